"""Opening the episode viewer on a large results tree: the time until the cell list is
served, for a synthetic tree of 10,000 cells (each with its summary, episodes and a
steps file), through the real server over HTTP. Target: < 2 s to the cell list, without
opening a single steps file (counted with an audit hook on every file opened).

    python bench/viewer_scale.py [--cells 10000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from _common import header

from balrog_worker.viewer import serve

opened_steps = 0


def count_steps_files(event: str, args: tuple) -> None:
    global opened_steps
    if event == "open" and str(args[0]).endswith("steps.jsonl"):
        opened_steps += 1


def make_tree(root: Path, cells: int) -> None:
    envs = ["babyai", "crafter", "nethack", "minihack", "textworld", "babaisai"]
    step = json.dumps({"episode_index": 0, "step": 0, "observation": "x" * 2000}) + "\n"
    for index in range(cells):
        env = envs[index % len(envs)]
        slug = f"model{index // 600}__naive__{env}__task{index}"
        cell = root / slug
        cell.mkdir()
        summary = {"run_id": slug,
                   "cell": {"model": f"model{index // 600}", "agent": "naive", "env": env,
                            "task": f"task{index}", "coordination_level": None,
                            "observation_mode": None},
                   "versions": {"balrog-worker": "0.1.0"}, "git_revision": "0" * 40,
                   "aggregate": {"progression": (index % 17) * 5.0, "progression_se": 1.0,
                                 "episodes": 5, "failed_episodes": 0, "cost_usd": 0.01}}
        (cell / "summary.json").write_text(json.dumps(summary, indent=2))
        (cell / "episodes.jsonl").write_text(json.dumps({"episode_index": 0}) + "\n")
        (cell / "steps.jsonl").write_text(step * 50)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=10_000)
    args = parser.parse_args(argv)
    header(f"episode viewer on {args.cells:,} cells")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        make_tree(root, args.cells)
        print(f"tree written in {time.perf_counter() - started:.1f} s")
        sys.addaudithook(count_steps_files)
        server = serve(root, port=0)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{server.server_address[1]}"
        timings = []
        for _ in range(3):
            started = time.perf_counter()
            with urllib.request.urlopen(f"{base}/") as page:
                page.read()
            with urllib.request.urlopen(f"{base}/data/cells.json") as response:
                cells = json.loads(response.read())
            timings.append(time.perf_counter() - started)
        server.shutdown()
    assert len(cells) == args.cells
    print(f"page + cell list of {len(cells):,} cells: first {timings[0]:.2f} s, then "
          f"{min(timings[1:]):.2f} s (target < 2 s); steps files opened: {opened_steps}")
    return 0 if timings[0] < 2 and opened_steps == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
