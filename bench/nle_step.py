"""NetHack and MiniHack: the CPU a step costs through the game API (the simulator, BALROG's
--More-- presses and the text), the part the text takes, a reset, and the peak memory of
a whole cell (a `balrog-worker run` process playing the random model).

    python bench/nle_step.py [--steps 2000] [--episodes 4]

The same script runs on older versions of the project (it uses only `envs.make`,
`reset`, `step`, `actions` and `_observe`), so figures before and after a change can be
taken back to back on one machine.
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header

from balrog_worker import envs

GAMES = ["nethack/challenge", "minihack/quest_easy", "minihack/mazewalk_15x15",
         "minihack/boxoban_medium"]
# NetHack: moves and a few harmless commands (random keys would spend most steps in menus).
NETHACK_ACTIONS = ["north", "east", "south", "west", "northeast", "southeast", "southwest",
                   "northwest", "far east", "far west", "search", "esc", "more", "pickup"]


def measure(env_id: str, steps: int) -> dict[str, float]:
    env, task = env_id.split("/")
    envs.make(env, task).close()  # the first also imports the game's modules
    built = time.process_time()
    game = envs.make(env, task)
    build = time.process_time() - built
    actions = NETHACK_ACTIONS if env == "nethack" else sorted(game.actions)
    rng = random.Random(0)
    step_time = text_time = reset_time = 0.0
    resets = 0
    seed = 0
    started = time.process_time()
    game.reset(seed)
    reset_time += time.process_time() - started
    resets += 1
    for _ in range(steps):
        action = rng.choice(actions)
        started = time.process_time()
        outcome = game.step(action)
        step_time += time.process_time() - started
        started = time.process_time()
        game._observe()
        text_time += time.process_time() - started
        if outcome.terminated or outcome.truncated:
            seed += 1
            started = time.process_time()
            game.reset(seed)
            reset_time += time.process_time() - started
            resets += 1
    game.close()
    return {"build_ms": build * 1e3, "step_ms": step_time / steps * 1e3,
            "text_ms": text_time / steps * 1e3, "reset_ms": reset_time / resets * 1e3}


PEAK = ("import resource, subprocess, sys; "
        "subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")


def cell_memory(env_id: str, episodes: int, max_steps: int) -> tuple[float, float]:
    """Peak RSS (MB) and wall time of one cell run by the installed command line."""
    env, task = env_id.split("/")
    exe = shutil.which("balrog-worker", path=str(Path(sys.executable).parent))
    out = Path(tempfile.mkdtemp(prefix="nle-bench-"))
    command = [exe, "-q", "run", "--env", env, "--task", task, "--model", "random",
               "--agent", "naive", "--episodes", str(episodes), "--max-steps",
               str(max_steps), "--out", str(out / "cell")]
    try:
        started = time.perf_counter()
        # A parent of its own, so that the peak is this cell's alone.
        peak = subprocess.run([sys.executable, "-c", PEAK, *command], check=True,
                              capture_output=True, text=True).stdout
        return int(peak) / 1024, time.perf_counter() - started
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=100)
    parser.add_argument("--games", nargs="*", default=GAMES)
    args = parser.parse_args()
    header("NetHack and MiniHack step cost",
           ("nle", "balrog-nle", "minihack", "gym", "textworld"))
    print(f"\n{'game':<26} {'make ms':>8} {'reset ms':>9} {'step ms':>8} {'text ms':>8}"
          f" {'cell MB':>8} {'cell s':>7}")
    for env_id in args.games:
        try:
            figures = measure(env_id, args.steps)
        except (ValueError, FileNotFoundError) as error:  # a task this version lacks
            print(f"{env_id:<26} unavailable: {str(error)[:60]}")
            continue
        peak, wall = cell_memory(env_id, args.episodes, args.max_steps)
        print(f"{env_id:<26} {figures['build_ms']:>8.1f} {figures['reset_ms']:>9.1f} "
              f"{figures['step_ms']:>8.3f} {figures['text_ms']:>8.3f} {peak:>8.0f} {wall:>7.1f}")
    print(f"\nmake ms: CPU of building a game (after a first one); step ms: CPU of one "
          f"game.step (simulator, --More-- presses, text), mean of {args.steps} random "
          "steps; text ms: CPU of rendering the text once more; cell: `balrog-worker run` "
          f"of {args.episodes} episodes x {args.max_steps} steps, random model (peak RSS "
          "of the process, wall time)")


if __name__ == "__main__":
    main()
