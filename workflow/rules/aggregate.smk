rule aggregate:
    input:
        cell_summaries,
    output:
        metrics=f"{REPORTS}/metrics.json",
        leaderboard=f"{REPORTS}/tables/leaderboard.csv",
        leaderboard_md=f"{REPORTS}/tables/leaderboard.md",
        per_env=f"{REPORTS}/tables/per_env.csv",
        per_task=f"{REPORTS}/tables/per_task.csv",
        latex=f"{REPORTS}/tables/leaderboard.tex",
        rq=expand(f"{REPORTS}/tables/{{name}}.csv", name=RQ_TABLES),
    params:
        python=PYTHON,
        results=RESULTS,
        reports=subpath(output.metrics, parent=True),
    log:
        "logs/aggregate.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker aggregate {params.results:q}"
        " --out {params.reports:q} > {log:q} 2>&1"
