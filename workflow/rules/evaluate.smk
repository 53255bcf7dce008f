# One job per grid cell. Only summary.json is declared as output: it is written last, and
# a failed job must not make Snakemake delete the episodes already recorded beside it
# (the worker resumes from them on the next run).


rule cell_config:
    output:
        f"{RESULTS}/{{cell}}/cell.json",
    params:
        config=cell_config,
    log:
        "logs/cell_config/{cell}.log",
    run:
        with open(output[0], "w") as out:
            print(params.config, file=out)


rule evaluate:
    input:
        rules.cell_config.output,
    output:
        f"{RESULTS}/{{cell}}/summary.json",
    params:
        python=PYTHON,
        out_dir=cell_dir,
    log:
        "logs/evaluate/{cell}.log",
    threads: cell_threads
    resources:
        openai_calls=api_calls("openai"),
        vllm_calls=api_calls("vllm"),
        anthropic_calls=api_calls("anthropic"),
        gemini_calls=api_calls("gemini"),
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker run --config {input:q} --out {params.out_dir:q}"
        " > {log:q} 2>&1"


rule evaluate_all:
    input:
        cell_summaries,
