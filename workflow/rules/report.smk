rule figures:
    input:
        rules.aggregate.output.per_env,
    output:
        png=f"{REPORTS}/figures/leaderboard.png",
        pdf=f"{REPORTS}/figures/leaderboard.pdf",
    log:
        "logs/figures.log",
    shell:
        "{PYTHON:q} -m balrog_worker figures {REPORTS}/tables --out {REPORTS}/figures"
        " > {log:q} 2>&1"
