"""Aggregation at scale: synthetic episode and step records in many cell directories, then
everything `balrog-worker aggregate` writes (the leaderboard, per-task and usage tables,
and the RQ1-RQ3 statistics), timed, with the peak memory of the process.

    python bench/aggregation_scale.py                     # 1,000,000 episodes, 10,000,000 steps
    python bench/aggregation_scale.py --episodes 100000 --steps-per-episode 0

Records are written by polars (fast) with the fields and sizes of real ones: an episode
record of ~700 bytes, a step record of ~450 bytes with a short observation. Targets
(issue 8): under 60 s and under 4 GB.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
from _common import header, verdict

from balrog_worker.analysis.leaderboard import write_leaderboard

ENVS = ["babyai", "crafter", "textworld", "minihack", "nethack", "minigrid"]
TARGET_S, TARGET_GB = 60.0, 4.0


def cell_of(c: int) -> dict:
    """The c-th cell: a quarter are MultiGrid cells (levels x modes), the rest single-agent."""
    multi = c % 4 == 0
    return {
        "run_id": f"cell{c}", "model": f"model{c % 5}", "agent": "naive",
        "env": "multigrid" if multi else ENVS[c % len(ENVS)],
        "task": ("soccer", "collect")[c % 2] if multi else f"task{c % 3}",
        "coordination_level": 1 + c % 3 if multi else None,
        "observation_mode": ("egocentric", "visible_teammates")[c // 3 % 2] if multi else None,
    }


def episodes_frame(cell: dict, n: int, rng: np.random.Generator) -> pl.DataFrame:
    frame = pl.DataFrame({
        **{key: [value] * n for key, value in cell.items()},
        "episode_index": np.arange(n), "seed": np.arange(n) * 7919,
        "num_steps": rng.integers(1, 100, n), "episode_return": rng.random(n),
        "progression": rng.random(n), "success": rng.random(n) < 0.1,
        "invalid_actions": rng.integers(0, 5, n), "llm_calls": rng.integers(1, 100, n),
        "input_tokens": rng.integers(1_000, 100_000, n), "output_tokens": rng.integers(10, 500, n),
        "cached_input_tokens": np.zeros(n, dtype=int), "reasoning_tokens": np.zeros(n, dtype=int),
        "retries": rng.integers(0, 2, n), "cost_usd": rng.random(n) / 100,
        "end_reason": ["max_steps"] * n, "terminated": [False] * n, "truncated": [True] * n,
        "failed": rng.random(n) < 0.01, "error": [None] * n, "duration_s": rng.random(n) * 60,
    }, strict=False)
    if cell["env"] == "multigrid":
        frame = frame.with_columns(
            possession_share=pl.lit(rng.random(n)), passes=pl.lit(rng.integers(0, 5, n)),
            both_chasing_rate=pl.lit(rng.random(n)), goals_for=pl.lit(rng.integers(0, 3, n)),
            goals_against=pl.lit(rng.integers(0, 3, n)), outcome=pl.lit("win"),
            agent_returns=pl.struct(agent_0=pl.lit(rng.random(n)), agent_1=pl.lit(rng.random(n))),
        )
    return frame


def steps_frame(cell: dict, episodes: int, per_episode: int,
                rng: np.random.Generator) -> pl.DataFrame:
    n = episodes * per_episode
    return pl.DataFrame({
        **{key: [value] * n for key, value in cell.items()},
        "episode_index": np.repeat(np.arange(episodes), per_episode),
        "step": np.tile(np.arange(per_episode), episodes), "agent_id": [None] * n,
        "observation": ["You see a wall 2 steps forward and a red key 1 step left. "
                        "You are carrying nothing."] * n,
        "completion": ["go forward"] * n, "reasoning": [None] * n,
        "candidate": ["go forward"] * n, "action": ["go forward"] * n,
        "valid": rng.random(n) < 0.9, "reward": np.zeros(n), "terminated": [False] * n,
        "truncated": [False] * n, "input_tokens": rng.integers(500, 5_000, n),
        "output_tokens": rng.integers(1, 50, n), "cached_input_tokens": np.zeros(n, dtype=int),
        "reasoning_tokens": np.zeros(n, dtype=int), "retries": np.zeros(n, dtype=int),
        "cost_usd": rng.random(n) / 1e4, "latency_s": rng.gamma(2.0, 0.3, n),
    }, strict=False)


def write_results(root: Path, episodes: int, cells: int, steps_per_episode: int) -> int:
    rng = np.random.default_rng(0)
    per_cell = episodes // cells
    for c in range(cells):
        cell = cell_of(c)
        directory = root / cell["run_id"]
        directory.mkdir(parents=True)
        episodes_frame(cell, per_cell, rng).write_ndjson(directory / "episodes.jsonl")
        if steps_per_episode:
            steps_frame(cell, per_cell, steps_per_episode, rng).write_ndjson(
                directory / "steps.jsonl")
    return sum(p.stat().st_size for p in root.rglob("*.jsonl"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=1_000_000)
    parser.add_argument("--steps-per-episode", type=int, default=10)
    parser.add_argument("--cells", type=int, default=1_000)
    parser.add_argument("--dir", type=Path, default=None,
                        help="where to write the records (default: a temporary directory)")
    args = parser.parse_args()

    header("aggregation of episode and step records", ("polars",))
    tmp = Path(tempfile.mkdtemp(dir=args.dir))
    try:
        start = time.perf_counter()
        size = write_results(tmp / "results", args.episodes, args.cells, args.steps_per_episode)
        print(f"wrote {args.episodes:,} episode and {args.episodes * args.steps_per_episode:,} "
              f"step records in {args.cells:,} cells ({size / 1e9:.2f} GB of JSONL) in "
              f"{time.perf_counter() - start:.0f} s")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        start = time.perf_counter()
        write_leaderboard(tmp / "results", tmp / "reports")
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f"aggregated in {elapsed:.1f} s; peak RSS {peak:.2f} GB (after writing the "
          f"records: {before:.2f} GB)")
    print(verdict("aggregation time", elapsed, TARGET_S, at_least=False, unit=" s"))
    print(verdict("peak RSS", peak, TARGET_GB, at_least=False, unit=" GB"))

if __name__ == "__main__":
    main()
