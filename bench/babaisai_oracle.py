"""The BabaIsAI oracle's solve rate: every one of BALROG's 40 tasks on seeds 0..N-1, each
played by the scripted expert (``envs.babaisai.solver``) within the 100-step cap, exactly
as the harness plays it (internal resets included).

    python bench/babaisai_oracle.py [--seeds 10] [--tasks goto_win two_room-make_win ...]

Prints one row per task (solved, mean steps, slowest instance) and the total; lists every
unsolved instance. Target: >= 98% of 40 x 10 solved.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import header

from balrog_worker.envs.babaisai import TASKS, BabaIsAIGame


def play(task: str, seed: int) -> tuple[bool, int, float]:
    game = BabaIsAIGame(task)
    game.reset(seed)
    started = time.perf_counter()
    steps, solved = 0, False
    while True:
        outcome = game.step(game.oracle_action())
        steps += 1
        if outcome.terminated or outcome.truncated:
            solved = game.progression() == 1.0
            break
    return solved, steps, time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    args = parser.parse_args(argv)
    header(f"BabaIsAI oracle: {len(args.tasks)} tasks x {args.seeds} seeds")
    total = solved_total = 0
    unsolved = []
    started = time.perf_counter()
    print(f"{'task':40s} {'solved':>7s} {'steps':>6s} {'slowest s':>9s}")
    for task in args.tasks:
        solved_here, steps_here, slowest = 0, [], 0.0
        for seed in range(args.seeds):
            solved, steps, seconds = play(task, seed)
            total += 1
            slowest = max(slowest, seconds)
            if solved:
                solved_here += 1
                steps_here.append(steps)
            else:
                unsolved.append(f"{task} seed {seed} ({steps} steps, {seconds:.1f} s)")
        solved_total += solved_here
        mean = sum(steps_here) / len(steps_here) if steps_here else float("nan")
        print(f"{task:40s} {solved_here:>3d}/{args.seeds:<3d} {mean:6.1f} {slowest:9.2f}",
              flush=True)
    rate = 100 * solved_total / total
    print(f"solved {solved_total}/{total} = {rate:.1f}% (target >= 98%) "
          f"in {time.perf_counter() - started:.0f} s")
    for line in unsolved:
        print(f"unsolved: {line}")
    return 0 if rate >= 98 else 1


if __name__ == "__main__":
    sys.exit(main())
