# The experiment grid as a workflow: one evaluation job per cell, then the leaderboard
# tables, metrics, figures and one HTML page (reports/index.html) under reports/.
# See README.md for how to run it.
from snakemake.utils import min_version

min_version("9.0")


configfile: "params.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/report.smk"


report: "workflow/report/workflow.rst"


# The cell summaries are named here too, not only through aggregate: Snakemake looks for
# the missing output of a job only when a target or a job that must run asks for it, so a
# new cell in an otherwise finished grid (reports built by `dvc repro`, which leaves
# Snakemake no record of them) would be "Nothing to be done".
rule all:
    input:
        cell_summaries,
        rules.aggregate.output,
        rules.figures.output,
        rules.html_report.output,
    default_target: True
