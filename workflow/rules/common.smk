# Grid expansion and validation, shared by every rule. The grid comes from the
# balrog_worker package itself, so the workflow and `balrog-worker validate` agree.
import json
import os
import sys

from snakemake.exceptions import WorkflowError

from balrog_worker.config import ConfigError, params_from_dict
from balrog_worker.vocab import BALROG_ENVS, opponent_model

# params_from_dict checks the config against workflow/schemas/params.schema.yaml (the
# package's own copy of it) and then its cross-references, failing with one line that
# names the bad field, before any job is scheduled.
try:
    PARAMS = params_from_dict(config, source="params")
except ConfigError as error:
    raise WorkflowError(f"invalid params: {error}") from None

LOCAL_MODEL_THREADS = 4  # a local model's threads where params.yaml sets none
RESULTS = PARAMS.results_dir
# Without a shared filesystem (a default storage provider: pods, or
# `--shared-fs-usage none`), a job sees only the files it declares, fetched from and sent
# to the storage: a cell's records are then outputs of its job and inputs of the tables
# and the report. On a shared filesystem only summary.json is declared, because
# Snakemake deletes the outputs of a failed job, and the retry resumes from its records.
# (A job in a fresh directory resumes from its checkpoint in the storage instead: see
# `checkpoint_option`.)
STORAGE_PREFIX = (
    workflow.storage_settings.default_storage_prefix
    if workflow.storage_settings.default_storage_provider
    else None
)
CELL_RECORDS = ("episodes.jsonl", "steps.jsonl") if STORAGE_PREFIX else ()
REPORTS = PARAMS.reports_dir
PYTHON = sys.executable
CELLS = {cell.slug: cell for cell in PARAMS.cells()}
# The research-question tables and figures exist only for grids with multi-agent cells.
MULTI_AGENT = any(cell.coordination_level is not None for cell in CELLS.values())
RQ_TABLES = (
    ["rq1_performance", "rq1_paired", "rq2_performance", "rq2_paired", "rq3_behaviour"]
    if MULTI_AGENT
    else []
)
# The leaderboard figure holds BALROG's six environments; the others have their own.
ENVS_PLAYED = {cell.env for cell in CELLS.values()}
FIGURES = (
    (["leaderboard"] if ENVS_PLAYED & set(BALROG_ENVS) else [])
    + (["other_envs"] if ENVS_PLAYED - set(BALROG_ENVS) else [])
    + ["per_task"]
    + (["rq1_levels", "rq2_modes", "rq3_behaviour"] if MULTI_AGENT else [])
)


wildcard_constraints:
    cell="[A-Za-z0-9._-]+",


def cell_config(wildcards):
    """The resolved config of one cell, as JSON: a change reruns that cell only."""
    return json.dumps(PARAMS.cell_config(CELLS[wildcards.cell]).public(), sort_keys=True)


def cell_threads(wildcards):
    """A local model computes on the job's own cores (Snakemake lowers a request above
    --cores to --cores). Other cells spread their episodes over worker processes, one a
    core (`run --processes {threads}`), as many as their calls in flight keep busy."""
    cell = CELLS[wildcards.cell]
    model = PARAMS.model(cell.model)
    if model.backend == "local":
        return model.threads or LOCAL_MODEL_THREADS
    return PARAMS.cell_config(cell).cores_wanted()


def api_calls(backend):
    """A resource function: the calls this cell keeps in flight at ``backend``'s servers,
    or None (no claim at all) for cells of other backends. A profile's global cap on
    ``<backend>_calls`` then bounds the calls of all running jobs together."""

    def calls(wildcards):
        cell = CELLS[wildcards.cell]
        env = PARAMS.envs.get(cell.env)
        rival = opponent_model(env.opponent) if env else None
        backends = {PARAMS.model(name).backend for name in (cell.model, rival) if name}
        if backend not in backends:
            return None  # decided before resolving the cell: most cells stop here
        return PARAMS.cell_config(cell).calls_in_flight(backend)

    return calls


def served_gpus(wildcards):
    """The GPUs of the vLLM server a cell starts for itself, or None (no claim)."""
    serve = PARAMS.model(CELLS[wildcards.cell].model).serve
    return serve.gpus if serve else None


def cell_summaries(wildcards):
    return [f"{RESULTS}/{slug}/summary.json" for slug in CELLS]


def cell_outputs(wildcards):
    """Every file of every cell that the tables and the report read: the summaries, and
    without a shared filesystem the records too."""
    return [
        f"{RESULTS}/{slug}/{name}" for slug in CELLS for name in ("summary.json", *CELL_RECORDS)
    ]


def cells_dir(wildcards, input):
    """Where a job finds the cells in its inputs: RESULTS, or the local copy of it that a
    storage provider fetched."""
    first = input.cells[0]
    return os.path.dirname(os.path.dirname(first))


def checkpoint_option(wildcards):
    """Without a shared filesystem, where the job keeps its cell's records while it runs,
    so that a retry in another pod resumes from them (`run --checkpoint`); nothing on a
    shared filesystem, where the records themselves stay."""
    if not STORAGE_PREFIX:
        return []
    return ["--checkpoint", f"{STORAGE_PREFIX.rstrip('/')}/checkpoints/{RESULTS}/{wildcards.cell}"]
