rule figures:
    input:
        rules.aggregate.output.per_env,
    output:
        png=f"{REPORTS}/figures/leaderboard.png",
        pdf=f"{REPORTS}/figures/leaderboard.pdf",
    params:
        python=PYTHON,
        tables=subpath(input[0], parent=True),
        figures=subpath(output.png, parent=True),
    log:
        "logs/figures.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker figures {params.tables:q} --out {params.figures:q}"
        " > {log:q} 2>&1"
