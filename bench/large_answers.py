"""Answers of 10 MB: what a cell keeps of them, in memory, on disk and in the requests
that follow (issue 18). A local server answers every call with the same 10 MB text; a
cell of 16 episodes x 3 steps plays them 16 at a time with max_tokens 8.

    python bench/large_answers.py [--megabytes 10] [--episodes 16]

Prints the peak memory of the `balrog-worker run` process, the size of steps.jsonl, the
largest request body the server received, and the calls made against the calls recorded.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import header
from _delay_server import DelayServerProcess


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=16)
    args = parser.parse_args(argv)
    header(f"{args.megabytes} MB answers, {args.episodes} episodes in parallel")
    exe = Path(sys.executable).parent / "balrog-worker"
    with tempfile.TemporaryDirectory() as tmp, \
            DelayServerProcess(delay=0.05, answer="turn left ",
                               repeat=args.megabytes * 100_000) as server:
        params = Path(tmp) / "params.yaml"
        params.write_text(json.dumps({
            "models": {"m": {"backend": "openai_compatible", "model": "m",
                             "base_url": server.url, "max_retries": 0,
                             "concurrency": args.episodes,
                             "generation": {"max_tokens": 8}}},
            "agents": {"naive": {}}, "envs": {"babyai": {"tasks": ["goto"]}},
            "grid": {"models": ["m"], "agents": ["naive"], "envs": ["babyai"]}}))
        out = Path(tmp) / "out"
        started = time.perf_counter()
        subprocess.run([str(exe), "-q", "run", "--params", str(params), "--model", "m",
                        "--env", "babyai/goto", "--episodes", str(args.episodes),
                        "--max-steps", "3", "--parallel", str(args.episodes), "--cache", "off",
                        "--out", str(out)], check=True)
        seconds = time.perf_counter() - started
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        stats = server.stats()
        episodes = [json.loads(line) for line in (out / "episodes.jsonl").open()]
        steps = [json.loads(line) for line in (out / "steps.jsonl").open()]
        recorded = sum(e["llm_calls"] for e in episodes)
        print(f"run: {seconds:.1f} s; peak memory of the run: {peak_mb:.0f} MB")
        print(f"steps.jsonl: {(out / 'steps.jsonl').stat().st_size / 1024:.1f} kB for "
              f"{len(steps)} steps, {sum(s['answer_truncated'] for s in steps)} flagged "
              "answer_truncated")
        print(f"largest request body: {stats['largest_request'] / 1024:.1f} kB")
        print(f"calls made {stats['requests']}, recorded {recorded}")
    return 0 if recorded == stats["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())
