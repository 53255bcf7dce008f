# One job per grid cell. Only summary.json is declared as output: it is written last, and
# a failed job must not make Snakemake delete the episodes already recorded beside it
# (the worker resumes from them on the next run).


rule evaluate:
    output:
        f"{RESULTS}/{{cell}}/summary.json",
        # only without a shared filesystem (common.smk)
        *(f"{RESULTS}/{{cell}}/{name}" for name in CELL_RECORDS),
    params:
        python=PYTHON,
        # the output's own directory, so that it follows a storage provider's local copy
        out_dir=subpath(output[0], parent=True),
        # The cell's resolved config, written beside its records as cell.json. A param,
        # not a file of its own rule: a change still reruns the cell (params are a
        # rerun trigger), and one job per cell halves Snakemake's work on a large grid.
        config=cell_config,
        checkpoint=checkpoint_option,
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
        "printf '%s\\n' {params.config:q} > {params.out_dir:q}/cell.json && "
        "{params.python:q} -m balrog_worker run --config {params.out_dir:q}/cell.json"
        " --out {params.out_dir:q} --processes {threads} {params.checkpoint:q}"
        " > {log:q} 2>&1"


rule evaluate_all:
    input:
        cell_summaries,
