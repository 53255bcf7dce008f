# Figures from the tables alone, then one HTML page of everything (reports/index.html).
# The figures and tables are also report items: `snakemake --report report.html` builds
# Snakemake's own interactive report from them.


rule figures:
    input:
        rules.aggregate.output.per_env,
        rules.aggregate.output.rq,
    output:
        report(
            expand(f"{REPORTS}/figures/{{name}}.png", name=FIGURES),
            caption="../report/figure.rst",
            category="Figures",
        ),
        expand(f"{REPORTS}/figures/{{name}}.pdf", name=FIGURES),
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


# The page, and beside it the episode viewer (reports/viewer: every cell, its episodes,
# frames replayed from the records) with each cell's best and worst episode animated.
rule html_report:
    input:
        rules.aggregate.output,
        rules.figures.output,
        cell_summaries,
    output:
        page=f"{REPORTS}/index.html",
        viewer=directory(f"{REPORTS}/viewer"),
    params:
        python=PYTHON,
        reports=subpath(output.page, parent=True),
        results=RESULTS,
    log:
        "logs/html_report.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker report {params.reports:q} --out {output.page:q}"
        " --results {params.results:q} > {log:q} 2>&1"
