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
    conda:
        "../envs/balrog-worker.yaml"
    # A shell command, not a `run:` block: Snakemake starts a whole new Snakemake process
    # for each `run:` job (seconds per cell), and printf takes milliseconds.
    shell:
        "printf '%s\\n' {params.config:q} > {output:q} 2> {log:q}"


rule evaluate:
    input:
        rules.cell_config.output,
    output:
        f"{RESULTS}/{{cell}}/summary.json",
    params:
        python=PYTHON,
        # the output's own directory, so that it follows a storage provider's local copy
        out_dir=subpath(output[0], parent=True),
    log:
        "logs/evaluate/{cell}.log",
    threads: cell_threads
    # Calls in flight per backend, capped across jobs by the profiles' global resources
    # (absent from the cells of other backends; an uncapped resource is unlimited).
    resources:
        openai_calls=api_calls("openai"),
        anthropic_calls=api_calls("anthropic"),
        gemini_calls=api_calls("gemini"),
        vllm_calls=api_calls("vllm"),
        openai_compatible_calls=api_calls("openai_compatible"),
        # GPUs of a vLLM server the job starts itself (`serve`); the SLURM and Kubernetes
        # executors turn this into --gpus / nvidia.com/gpu.
        gpu=served_gpus,
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker run --config {input:q} --out {params.out_dir:q}"
        " > {log:q} 2>&1"


rule evaluate_all:
    input:
        cell_summaries,
