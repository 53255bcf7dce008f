rule aggregate:
    input:
        cells=cell_outputs,
    output:
        metrics=f"{REPORTS}/metrics.json",
        leaderboard=report(
            f"{REPORTS}/tables/leaderboard.csv", caption="../report/table.rst", category="Tables"
        ),
        leaderboard_md=f"{REPORTS}/tables/leaderboard.md",
        other_envs=report(
            f"{REPORTS}/tables/other_envs.csv", caption="../report/table.rst", category="Tables"
        ),
        per_env=report(
            f"{REPORTS}/tables/per_env.csv", caption="../report/table.rst", category="Tables"
        ),
        per_task=report(
            f"{REPORTS}/tables/per_task.csv", caption="../report/table.rst", category="Tables"
        ),
        usage=report(
            f"{REPORTS}/tables/usage.csv", caption="../report/table.rst", category="Tables"
        ),
        latex=f"{REPORTS}/tables/leaderboard.tex",
        rq=report(
            expand(f"{REPORTS}/tables/{{name}}.csv", name=RQ_TABLES),
            caption="../report/table.rst",
            category="Research questions",
        ),
    params:
        python=PYTHON,
        # where the cells are: RESULTS, or its local copy of a storage provider
        results=cells_dir,
        reports=subpath(output.metrics, parent=True),
    log:
        "logs/aggregate.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker aggregate {params.results:q}"
        " --out {params.reports:q} > {log:q} 2>&1"
