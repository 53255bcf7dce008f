rule figures:
    input:
        rules.aggregate.output.per_env,
        rules.aggregate.output.rq,
    output:
        expand(f"{REPORTS}/figures/{{name}}.{{ext}}", name=FIGURES, ext=["png", "pdf"]),
    params:
        python=PYTHON,
        tables=subpath(input[0], parent=True),
        figures=subpath(output[0], parent=True),
    log:
        "logs/figures.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker figures {params.tables:q} --out {params.figures:q}"
        " > {log:q} 2>&1"
