"""Concurrent episodes against a slow model: requests/s that one cell keeps up against an
OpenAI-compatible server that answers every call after a fixed delay, for N episodes in
flight, compared with the ideal N / delay.

    python bench/concurrency.py [--n 1 8 64 256] [--delay 0.2] [--steps 50] [--cache on]
                                [--processes 2] [--env babyai/goto] [--mosaic-config]

Each N runs one cell through the real harness (``evaluator.run_cell``, the ``openai``
SDK, the naive agent on minigrid/empty, the response cache as configured) with N episodes,
``parallel_episodes`` = N and the model's ``concurrency`` = N. The server
(``_delay_server.py``) runs in its own process on an asyncio loop. The rate is the
requests the server counted over the wall time of ``run_cell``, start-up included.
``--processes`` spreads the cell's episodes over that many worker processes (what
``run --processes`` and Snakemake's threads give a cell). Memory is the peak of the
summed PSS of the harness and its workers (the server left out).

Targets: at least 0.9 of the ideal at N = 64 on 2 cores (issue 8; issue 28: through
MOSAIC's config path on BabyAI), and at N = 256 at least 0.8 of the ideal in under 1 GB
(issue 28).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import resource
import tempfile
import time
from pathlib import Path

from _common import PeakMemory, header, load_average, verdict
from _delay_server import DelayServerProcess

from balrog_worker.cachedir import CACHE_ENV
from balrog_worker.cells import Cell
from balrog_worker.config import AgentSpec, CellConfig, Generation, ModelSpec
from balrog_worker.evaluator import run_cell

TARGETS = {64: 0.9, 256: 0.8}  # N: rate / ideal
MEMORY_TARGET_GB = 1.0  # at N = 256


def measure(server: DelayServerProcess, n: int, steps: int, env_id: str, cache: str,
            seed: int, out: Path, mosaic: bool = False, processes: int = 1) -> dict:
    env, task = env_id.split("/")
    if mosaic:  # MOSAIC's cell JSON, as its seed config writes it: parallel_workers = n
        from dataclasses import replace

        from balrog_worker.worker_config import mosaic_cell_config

        config = mosaic_cell_config({
            "worker": "balrog", "model": "delay", "backend": "openai_compatible",
            "base_url": server.url, "environment": env_id, "num_episodes": n,
            "max_steps": steps, "history_window": 16, "parallel_workers": n, "seed": seed,
            "temperature": 0.0, "max_tokens": 8})
        config = replace(config, cache=cache)
    else:
        model = ModelSpec(name="delay-server", backend="openai_compatible", model="delay",
                          base_url=server.url, concurrency=n,
                          generation=Generation(temperature=0.0, max_tokens=8))
        config = CellConfig(cell=Cell(model.name, "naive", env, task), model=model,
                            agent=AgentSpec("naive", "naive"), episodes=n, max_steps=steps,
                            parallel_episodes=n, cache=cache, seed=seed)
    before, server_cpu = server.requests(), server.cpu_seconds()
    start, cpu = time.perf_counter(), harness_cpu()
    with contextlib.redirect_stdout(io.StringIO()), \
            PeakMemory(skip=(server.pid,)) as memory:  # BabyAI's generator chatters
        report = run_cell(config, out, processes=processes)
    wall, cpu = time.perf_counter() - start, harness_cpu() - cpu
    requests = server.requests() - before
    server_cpu = server.cpu_seconds() - server_cpu
    latencies = [json.loads(line)["latency_s"] for line in (out / "steps.jsonl").open()]
    return {"n": n, "failed": report.failed, "requests": requests, "wall_s": wall,
            "rate": requests / wall, "latency_s": sum(latencies) / len(latencies),
            "cpu_ms": 1000 * cpu / requests, "server_cpu_ms": 1000 * server_cpu / requests,
            "memory_gb": memory.peak_bytes / 1e9}


def harness_cpu() -> float:
    """CPU seconds of this process and of its ended children (the cell's worker
    processes; the server runs on until the end)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF,
                                                         resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1, 8, 64, 256],
                        help="episodes in flight, one run each")
    parser.add_argument("--delay", type=float, default=0.2, help="the server's answer delay (s)")
    parser.add_argument("--steps", type=int, default=50, help="steps (model calls) an episode")
    parser.add_argument("--env", default="minigrid/empty")
    parser.add_argument("--cache", choices=["on", "off"], default="on",
                        help="the response cache (on is the default of a real run)")
    parser.add_argument("--processes", type=int, default=1,
                        help="the cell's worker processes (run_cell's processes)")
    parser.add_argument("--mosaic-config", action="store_true",
                        help="configure each run as MOSAIC's cell JSON (parallel_workers = N)")
    args = parser.parse_args()
    header("concurrent episodes against a delay server", ("openai", "httpx", "httpx2"))
    print(f"# {args.env}, {args.steps} steps an episode, delay {args.delay * 1000:.0f} ms, "
          f"response cache {args.cache}, {args.processes} process(es) a cell")
    print(f"{'N':>5} {'requests':>9} {'wall s':>7} {'req/s':>8} {'ideal':>7} {'ratio':>6} "
          f"{'latency ms':>11} {'CPU ms/req':>10} {'server':>7} {'PSS GB':>7} {'load':>15}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp, \
            DelayServerProcess(args.delay) as server:
        # A fresh response cache: every call of the run must reach the server.
        os.environ[CACHE_ENV] = str(Path(tmp) / "cache")
        # Warm-up: imports, the SDK, the environment's first build.
        # Each run its own base seed, so no prompt of one is a cache hit in another.
        measure(server, 1, 2, args.env, args.cache, 999, Path(tmp) / "warm")
        for seed, n in enumerate(args.n):
            row = measure(server, n, args.steps, args.env, args.cache, seed,
                          Path(tmp) / f"n{n}", mosaic=args.mosaic_config,
                          processes=args.processes)
            ideal = n / args.delay
            rows.append({**row, "ratio": row["rate"] / ideal})
            print(f"{n:>5} {row['requests']:>9} {row['wall_s']:>7.2f} {row['rate']:>8.1f} "
                  f"{ideal:>7.0f} {row['rate'] / ideal:>6.2f} "
                  f"{row['latency_s'] * 1000:>11.1f} {row['cpu_ms']:>10.2f} "
                  f"{row['server_cpu_ms']:>7.2f} {row['memory_gb']:>7.2f} "
                  f"{load_average():>15}"
                  + (f"  ({row['failed']} episodes failed)" if row["failed"] else ""))
    for row in rows:
        if row["n"] in TARGETS:
            print(verdict(f"N={row['n']} rate / ideal", row["ratio"], TARGETS[row["n"]]))
        if row["n"] == 256:
            print(verdict("N=256 memory", row["memory_gb"], MEMORY_TARGET_GB,
                          at_least=False, unit=" GB"))


if __name__ == "__main__":
    main()
