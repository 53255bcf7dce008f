"""Workflow planning at scale: the wall time and peak memory of ``snakemake -n`` (a
dry-run: parse, validate params, expand the grid, build the DAG of every job) for a grid
of 10,000 cells.

    python bench/grid_scale.py [--models 100] [--from-worktree] [--keep DIR]

The workflow (Snakefile, workflow/, profiles/) is copied from git HEAD (or the working tree with
``--from-worktree``) into a temporary directory, next to a generated params.yaml: so the
repository's params.yaml, results and .snakemake are never touched. Each model crosses 4
agents and 25 (env, task, level, mode) combinations: BabyAI's 5 tasks, MiniGrid's 6,
Crafter, NetHack, and MultiGrid's 2 games x 3 coordination levels x 2 observation modes;
100 models give 10,000 cells (20,000 jobs: a cell config and an evaluation per cell).
Peak memory is the largest resident set of any child (Snakemake). Target (issue 8):
under 15 s.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import copy_workflow, header, load_average, verdict

TARGET_S = 15.0
AGENTS = ("naive", "cot", "robust_naive", "robust_cot")
ENVS = {"babyai": 5, "minigrid": 6, "crafter": 1, "nethack": 1, "multigrid": 2}


def grid_params(models: int, results: str) -> dict:
    """A params file whose grid is ``models`` x 4 agents x 25 env combinations."""
    from balrog_worker import envs

    tasks = {env: envs.FAMILIES[env].task_ids()[:count] for env, count in ENVS.items()}
    return {
        "seed": 0,
        "paths": {"results": results, "reports": "reports"},
        "models": {f"model-{i:04d}": {"backend": "vllm", "model": f"org/model-{i:04d}",
                                      "base_url": "http://127.0.0.1:8000/v1"}
                   for i in range(models)},
        "agents": {name: {} for name in AGENTS},
        "envs": {env: {"tasks": list(names), "episodes": 10, "max_steps": 100}
                 for env, names in tasks.items()},
        "grid": {"models": [f"model-{i:04d}" for i in range(models)], "agents": list(AGENTS),
                 "envs": list(ENVS), "coordination_levels": [1, 2, 3],
                 "observation_modes": ["egocentric", "visible_teammates"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", type=int, default=100, help="100 cells each")
    parser.add_argument("--from-worktree", action="store_true",
                        help="the working tree's workflow files, not git HEAD's")
    parser.add_argument("--keep", type=Path, help="write the run here and keep it")
    args = parser.parse_args()
    header("snakemake dry-run of a large grid", ("snakemake",))
    snakemake = Path(sys.executable).parent / "snakemake"
    with tempfile.TemporaryDirectory() as tmp:
        where = args.keep or Path(tmp)
        where.mkdir(parents=True, exist_ok=True)
        copy_workflow(where, args.from_worktree)
        params = grid_params(args.models, str(where / "results"))
        (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        from balrog_worker.config import params_from_dict

        cells = len(params_from_dict(params).cells())
        print(f"# {cells:,} cells ({args.models} models x {len(AGENTS)} agents x 25), "
              f"workflow from {'the working tree' if args.from_worktree else 'git HEAD'}")
        print(f"{'command':28} {'wall s':>7} {'CPU s':>6} {'jobs':>6} {'load':>15}")
        results = {}
        for extra in ([], ["--quiet"]):  # --quiet: no per-job listing, no summary
            command = ["snakemake", "-n", *extra]
            shutil.rmtree(where / ".snakemake", ignore_errors=True)  # no state from a run before
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            run = subprocess.run([str(snakemake), *command[1:], "--cores", "64"], cwd=where,
                                 capture_output=True, text=True)
            elapsed = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
            (where / f"dry_run{'_quiet' if extra else ''}.log").write_text(run.stdout + run.stderr)
            if run.returncode != 0:
                print(run.stderr[-3000:], file=sys.stderr)
                raise SystemExit(f"{' '.join(command)} failed ({run.returncode})")
            total = [line.split()[-1] for line in (run.stdout + run.stderr).splitlines()
                     if line.startswith("total")]
            name = " ".join(command)
            results[name] = elapsed
            print(f"{name:28} {elapsed:>7.1f} {cpu:>6.1f} {total[0] if total else '-':>6} "
                  f"{load_average():>15}")
    # ru_maxrss of children: the largest resident set of any one of them (Snakemake).
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"peak RSS {peak_gb:.2f} GB")
    for name, elapsed in results.items():
        print(verdict(f"{name}, {cells:,} cells", elapsed, TARGET_S, at_least=False,
                      unit=" s"))


if __name__ == "__main__":
    main()
