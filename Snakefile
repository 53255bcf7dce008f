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


rule all:
    input:
        rules.aggregate.output,
        rules.figures.output,
        rules.html_report.output,
    default_target: True
