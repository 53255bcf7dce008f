"""Aggregation at scale: synthetic episode records in many cell directories, then the
leaderboard and the RQ tables, timed.

    python bench/aggregation_scale.py [--episodes 100000] [--cells 200]
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from balrog_worker.analysis.leaderboard import write_leaderboard

ENVS = ["babyai", "crafter", "textworld", "minihack", "nethack", "minigrid"]


def write_cells(root: Path, episodes: int, cells: int, rng: np.random.Generator) -> None:
    per_cell = episodes // cells
    for c in range(cells):
        multi = c % 4 == 0
        cell = {"model": f"model{c % 5}", "agent": "naive",
                "env": "multigrid" if multi else ENVS[c % len(ENVS)],
                "task": ("soccer", "collect")[c % 2] if multi else f"task{c % 3}",
                "coordination_level": 1 + c % 3 if multi else None,
                "observation_mode": ("egocentric", "visible_teammates")[c // 3 % 2]
                if multi else None}
        directory = root / f"cell{c}"
        directory.mkdir(parents=True)
        with open(directory / "episodes.jsonl", "w") as out:
            for i in range(per_cell):
                record = {"run_id": f"cell{c}", **cell, "episode_index": i, "seed": i,
                          "num_steps": int(rng.integers(1, 100)),
                          "progression": float(rng.random()), "success": False,
                          "invalid_actions": int(rng.integers(0, 5)), "llm_calls": 10,
                          "input_tokens": 1000, "output_tokens": 10, "cost_usd": 0.001,
                          "duration_s": 1.0, "failed": False}
                if multi:
                    record.update(possession_share=float(rng.random()), passes=1,
                                  goals_for=1, goals_against=0, outcome="win")
                out.write(json.dumps(record) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=100_000)
    parser.add_argument("--cells", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_cells(root / "results", args.episodes, args.cells, np.random.default_rng(0))
        start = time.perf_counter()
        write_leaderboard(root / "results", root / "reports")
        elapsed = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.episodes} episode records in {args.cells} cells: aggregated (leaderboard "
          f"and RQ tables) in {elapsed:.1f} s; peak RSS of the process {peak_mb:.0f} MB")


if __name__ == "__main__":
    main()
