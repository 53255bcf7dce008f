"""Harness overhead per environment: steps/s of a full harness episode with an instant
model (the random baseline: prompt building, parsing, records on disk) against the raw
simulator loop playing the same actions.

    python bench/harness_overhead.py [--steps 300] [--envs babyai/goto crafter/default ...]

Prints one row per env id and the ratio raw / harness (1.0 means no overhead).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from _common import header

from balrog_worker import envs
from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell
from balrog_worker.seeding import episode_seed

DEFAULT_IDS = ["babyai/goto", "minigrid/doorkey", "minihack/mazewalk_15x15", "nethack/challenge",
               "crafter/default", "textworld/coin_collector"]


def raw_step(game):
    """The simulator's own step for an action name, bypassing the text layer."""
    if game.family in ("babyai", "minigrid"):
        from balrog_worker.envs.gridworld import ACTIONS

        return lambda a: game._wrapped.step(ACTIONS[a][0])
    if game.family in ("nethack", "minihack"):
        def nle_step(action):
            # BALROG's skip_more is part of a step: --More-- pressed until the message ends.
            obs, _, done, _ = game.env.step(game._vocab[action])
            while (game._more is not None and not done
                   and "--More--" in game._observer.message(obs["tty_chars"])):
                obs, _, done, _ = game.env.step(game._more)

        return nle_step
    if game.family == "crafter":
        from balrog_worker.envs.crafter import ACTION_INDEX

        def crafter_step(action):
            game.env.step(ACTION_INDEX[action])
            game.env.render()  # BALROG's image: one more frame a step

        return crafter_step
    if game.family == "textworld":
        return lambda a: game.env.step(a)
    raise ValueError(game.family)


def measure(env_id: str, steps: int, out: Path) -> dict:
    env, task = env_id.split("/")
    config = CellConfig(cell=Cell("random", "naive", env, task), model=BUILTIN_MODELS["random"],
                        agent=AgentSpec("naive", "naive"), episodes=1, max_steps=steps,
                        parallel_episodes=1)
    run_cell(config, out / env_id.replace("/", "_"))  # warm-up: imports, caches
    directory = out / (env_id.replace("/", "_") + "_timed")
    start = time.perf_counter()
    run_cell(config, directory)
    harness_s = time.perf_counter() - start
    records = [json.loads(line) for line in (directory / "steps.jsonl").open()]
    actions = [r["action"] for r in records]

    game = envs.make(env, task)
    start = time.perf_counter()
    game.reset(episode_seed(config.seed, env, task, 0))
    step = raw_step(game)
    for action in actions:
        step(action)
    raw_s = time.perf_counter() - start
    game.close()
    return {"env": env_id, "steps": len(actions), "harness_steps_per_s": len(actions) / harness_s,
            "raw_steps_per_s": len(actions) / raw_s, "ratio": raw_s / harness_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--envs", nargs="+", default=DEFAULT_IDS)
    args = parser.parse_args()
    header("harness overhead: harness steps/s vs the raw simulator",
           ("balrog-nle", "minihack", "crafter", "textworld"))
    print(f"{'env':28} {'steps':>6} {'harness/s':>10} {'raw/s':>10} {'raw / harness':>14}")
    with tempfile.TemporaryDirectory() as tmp:
        for env_id in args.envs:
            try:
                row = measure(env_id, args.steps, Path(tmp))
            except ValueError as error:
                print(f"{env_id:28} skipped: {error}", file=sys.stderr)
                continue
            print(f"{row['env']:28} {row['steps']:>6} {row['harness_steps_per_s']:>10.0f} "
                  f"{row['raw_steps_per_s']:>10.0f} {row['ratio']:>14.2f}")


if __name__ == "__main__":
    main()
