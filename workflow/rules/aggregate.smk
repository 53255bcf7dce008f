rule aggregate:
    input:
        cell_summaries,
    output:
        metrics=f"{REPORTS}/metrics.json",
        leaderboard=f"{REPORTS}/tables/leaderboard.csv",
        leaderboard_md=f"{REPORTS}/tables/leaderboard.md",
        per_env=f"{REPORTS}/tables/per_env.csv",
        per_task=f"{REPORTS}/tables/per_task.csv",
    log:
        "logs/aggregate.log",
    shell:
        "{PYTHON:q} -m balrog_worker aggregate {RESULTS} --out {REPORTS} > {log:q} 2>&1"
