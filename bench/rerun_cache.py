"""Rerunning a finished grid from the response cache: the model calls a rerun into a fresh
results directory makes (counted at the server) and its wall time against the first run.

    python bench/rerun_cache.py [--episodes 4] [--steps 10] [--delay 0.2]

A small grid (one OpenAI-compatible model served by ``_delay_server.py``, the naive agent,
BabyAI goto and pickup, MiniGrid empty and doorkey) runs through Snakemake
(``snakemake evaluate_all``: one ``balrog-worker run`` process per cell) in a temporary
copy of the workflow, with the response cache on and ``$BALROG_WORKER_CACHE`` in a
temporary directory. Then the same grid runs again with ``paths.results`` pointing at an
empty directory. Targets (issue 8): no model call on the rerun, and the same actions
recorded in both runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _common import copy_workflow, header, load_average
from _delay_server import DelayServerProcess

from balrog_worker.cachedir import CACHE_ENV

ENVS = {"babyai": ["goto", "pickup"], "minigrid": ["empty", "doorkey"]}


def grid_params(url: str, results: str, episodes: int, steps: int) -> dict:
    return {
        "paths": {"results": results, "reports": "reports"},
        "evaluation": {"parallel_episodes": episodes, "cache": "on"},
        "models": {"delay-server": {"backend": "openai_compatible", "model": "delay",
                                    "base_url": url, "generation": {"temperature": 0.0,
                                                                    "max_tokens": 8}}},
        "agents": {"naive": {}},
        "envs": {env: {"tasks": tasks, "episodes": episodes, "max_steps": steps}
                 for env, tasks in ENVS.items()},
        "grid": {"models": ["delay-server"], "agents": ["naive"], "envs": list(ENVS)},
    }


def actions(results: Path) -> dict[str, list]:
    """Every cell's recorded (episode, step, action), the trajectory a rerun must repeat."""
    found = {}
    for steps in sorted(results.glob("*/steps.jsonl")):
        records = [json.loads(line) for line in steps.open()]
        found[steps.parent.name] = sorted((r["episode_index"], r["step"], r["action"])
                                          for r in records)
    return found


def run_grid(where: Path, server: DelayServerProcess, params: dict, cores: int) -> dict:
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    snakemake = Path(sys.executable).parent / "snakemake"
    before = server.requests()
    start = time.perf_counter()
    run = subprocess.run([str(snakemake), "--cores", str(cores), "evaluate_all"], cwd=where,
                         capture_output=True, text=True)
    wall = time.perf_counter() - start
    if run.returncode != 0:
        print(run.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"snakemake failed ({run.returncode})")
    results = Path(params["paths"]["results"])
    # A cell's job: from its cell.json (written just before) to its summary.json (last).
    jobs = [(cell / "summary.json").stat().st_mtime - (cell / "cell.json").stat().st_mtime
            for cell in results.iterdir()]
    return {"wall_s": wall, "calls": server.requests() - before, "actions": actions(results),
            "job_s": sum(jobs) / len(jobs), "load": load_average()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--episodes", type=int, default=4, help="per cell, all in parallel")
    parser.add_argument("--steps", type=int, default=10, help="steps (model calls) an episode")
    parser.add_argument("--delay", type=float, default=0.2, help="the server's answer delay (s)")
    parser.add_argument("--cores", type=int, default=2, help="snakemake --cores")
    args = parser.parse_args()
    header("rerunning a finished grid from the response cache", ("snakemake", "openai"))
    with tempfile.TemporaryDirectory() as tmp, DelayServerProcess(args.delay) as server:
        where = Path(tmp)
        copy_workflow(where)
        os.environ[CACHE_ENV] = str(where / "cache")  # inherited by every job
        runs = {}
        for name in ("first", "rerun"):
            params = grid_params(server.url, str(where / name / "runs"), args.episodes,
                                 args.steps)
            runs[name] = run_grid(where, server, params, args.cores)
    cells = len(runs["first"]["actions"])
    steps = sum(len(cell) for cell in runs["first"]["actions"].values())
    print(f"# {cells} cells x {args.episodes} episodes, {steps} steps in all, server delay "
          f"{args.delay * 1000:.0f} ms, snakemake --cores {args.cores}")
    print(f"{'run':6} {'model calls':>11} {'wall s':>7} {'s per job':>9} {'load':>15}")
    for name, run in runs.items():
        print(f"{name:6} {run['calls']:>11} {run['wall_s']:>7.1f} {run['job_s']:>9.1f} "
              f"{run['load']:>15}")
    same = runs["first"]["actions"] == runs["rerun"]["actions"]
    print(f"rerun recorded the same actions: {'yes' if same else 'NO'}")
    print(f"rerun model calls: {runs['rerun']['calls']} vs target 0: "
          f"{'met' if runs['rerun']['calls'] == 0 and same else 'MISSED'}")
    print(f"rerun wall time / first run's: {runs['rerun']['wall_s'] / runs['first']['wall_s']:.2f}"
          f" (a first-run job waits {args.steps} x {args.delay:g} s on the model)")


if __name__ == "__main__":
    main()
