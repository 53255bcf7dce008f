# Figures from the tables alone, then one HTML page of everything (reports/index.html).
# The figures and tables are also report items: `snakemake --report report.html` builds
# Snakemake's own interactive report from them.


rule figures:
    input:
        # every table the figures read (a job without a shared filesystem sees only its
        # inputs), the first naming the directory
        per_env=rules.aggregate.output.per_env,
        tables=rules.aggregate.output,
    output:
        report(
            expand(f"{REPORTS}/figures/{{name}}.png", name=FIGURES),
            caption="../report/figure.rst",
            category="Figures",
        ),
        expand(f"{REPORTS}/figures/{{name}}.pdf", name=FIGURES),
    params:
        python=PYTHON,
        tables=subpath(input.per_env, parent=True),
        figures=subpath(output[0], parent=True),
    log:
        "logs/figures.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker figures {params.tables:q} --out {params.figures:q}"
        " > {log:q} 2>&1"


# Snakemake's S3 storage plugin (0.3.6) remembers that a directory output was missing
# before its job ran, and still finds it missing after the job sent it: without a shared
# filesystem the viewer travels as one archive, reports/viewer.tar, to extract beside
# index.html.
VIEWER_ARCHIVE = bool(STORAGE_PREFIX)


# The page, and beside it the episode viewer (reports/viewer: every cell, its episodes,
# frames replayed from the records) with each cell's best and worst episode animated.
rule html_report:
    input:
        rules.aggregate.output,
        rules.figures.output,
        cells=cell_outputs,
    output:
        page=f"{REPORTS}/index.html",
        viewer=(
            f"{REPORTS}/viewer.tar" if VIEWER_ARCHIVE else directory(f"{REPORTS}/viewer")
        ),
    params:
        python=PYTHON,
        reports=subpath(output.page, parent=True),
        results=cells_dir,
    log:
        "logs/html_report.log",
    conda:
        "../envs/balrog-worker.yaml"
    shell:
        "{params.python:q} -m balrog_worker report {params.reports:q} --out {output.page:q}"
        " --results {params.results:q} > {log:q} 2>&1"
        + (" && tar -C {params.reports:q} -cf {output.viewer:q} viewer" if VIEWER_ARCHIVE else "")
