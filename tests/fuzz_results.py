"""Random damage to a real results tree, read by `aggregate`, `report`, `replay` and the
viewer: none may raise, hang, write outside its output, or grow without bound.

A trial copies a small real tree (BabyAI, MiniGrid and MultiGrid Soccer cells), applies a
few mutations drawn from a seeded generator (values of the wrong type, huge or hostile,
keys removed, files cut short or spliced with bytes that are not UTF-8, lines repeated or
dropped, whole files replaced by another JSON type, a directory, a link to /dev/zero or a
FIFO, a cell folder renamed), then runs the four readers in this process and checks the
outcome. tests/test_fuzz_results.py runs a sample in the suite; the full run prints its
figures:

    python -m tests.fuzz_results --trials 1500 --seed 0
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import random
import resource
import shutil
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from balrog_worker.cells import Cell
from balrog_worker.cli import main as cli
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell
from balrog_worker.viewer import Viewer

FILES = ("summary.json", "config.json", "episodes.jsonl", "steps.jsonl")
HOSTILE = (
    None, True, False, 0, -1, 2**31, 2**63, 10**30, -(10**30), 1e308, float("nan"),
    float("inf"), float("-inf"), 0.5, "", "x" * 100_000, "../../../../../PWNED",
    "/etc/passwd", "<img src=x onerror=alert(1)>", "$\\pwn{$", "%2e%2e", "..", ".", "\u202e",
    "\x00", "é" * 10, [], {}, [1, 2, 3], {"cell": "x"}, [None] * 1000, {"a": {"b": {}}},
)
FOLDER_NAMES = ("..x", ".hidden", "-rf", "a b", "<b>x", "ünï", "x" * 200, "$HOME")
SPECIAL = ("directory", "dev_zero", "fifo", "empty", "missing")
KINDS = ("set_value", "set_value", "set_value", "delete_key", "truncate", "splice",
         "repeat_line", "drop_line", "whole_type", "special", "rename_cell")
TRIAL_LIMIT_S = 60  # a reader that takes longer is taken to hang
EXIT_CODES = {0, 1, 2}  # ok, a damaged record said in one line, bad input


def base_tree(path: Path) -> Path:
    """A small real results tree under ``path``: its ``runs`` folder."""
    runs = path / "runs"
    cells = (("babyai", "goto", 2, None, None), ("minigrid", "empty", 1, None, None),
             ("multigrid", "soccer", 1, 1, "egocentric"))
    for env, task, episodes, level, mode in cells:
        config = CellConfig(cell=Cell("random", "naive", env, task, level, mode),
                            model=BUILTIN_MODELS["random"], agent=AgentSpec("naive", "naive"),
                            episodes=episodes, max_steps=3)
        run_cell(config, runs / config.cell.slug)
    return runs


# Mutations ------------------------------------------------------------------------------

def _paths(value, prefix=()):
    """Every path to a value inside a JSON document."""
    yield prefix
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value[:20]):
            yield from _paths(item, (*prefix, index))


def _set(document, path, value, delete=False):
    if not path:
        return value
    parent = document
    for key in path[:-1]:
        parent = parent[key]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return document


def _edit_json(rng: random.Random, text: str, delete: bool) -> str | None:
    """``text`` (one JSON document) with one value replaced or one key removed."""
    try:
        document = json.loads(text)
    except ValueError:
        return None
    paths = [p for p in _paths(document) if not delete or p]
    if not paths:
        return None
    path = rng.choice(paths)
    return json.dumps(_set(document, path, rng.choice(HOSTILE), delete=delete))


def mutate(rng: random.Random, runs: Path) -> str:
    """Damage the tree once; returns what was done (for a failure's report)."""
    cells = sorted(p for p in runs.iterdir() if p.is_dir())
    if not cells:
        return "nothing left to damage"
    cell = rng.choice(cells)
    kind = rng.choice(KINDS)
    if kind == "rename_cell":
        target = runs / rng.choice(FOLDER_NAMES)
        if target.exists():
            return "rename skipped"
        cell.rename(target)
        return f"rename {cell.name} -> {target.name}"
    path = cell / rng.choice(FILES)
    if kind == "special":
        special = rng.choice(SPECIAL)
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
        if special == "directory":
            path.mkdir()
        elif special == "dev_zero":
            path.symlink_to("/dev/zero")
        elif special == "fifo":
            os.mkfifo(path)
        elif special == "empty":
            path.write_bytes(b"")
        return f"special {path.name} of {cell.name}: {special}"
    if not path.is_file() or path.is_symlink():
        return f"{kind} {path.name} of {cell.name}: not a file, left"
    data = path.read_bytes()
    if kind == "truncate":
        path.write_bytes(data[:rng.randrange(len(data) + 1)])
    elif kind == "splice":
        at = rng.randrange(len(data) + 1)
        junk = rng.choice((b"\xff\xfe\x00", b"\n", b"{", b'"', b"\n{\"episode_index\": \"",
                           bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))))
        path.write_bytes(data[:at] + junk + data[at:])
    elif kind == "whole_type":
        path.write_text(json.dumps(rng.choice(([], "x", None, 3, {}, [[]]))) + "\n")
    elif path.suffix == ".jsonl":
        lines = data.split(b"\n")[:-1] or [b""]
        at = rng.randrange(len(lines))
        if kind == "repeat_line":
            lines.insert(at, lines[at])
        elif kind == "drop_line":
            del lines[at]
        else:
            edited = _edit_json(rng, lines[at].decode("utf-8", "replace"),
                                delete=kind == "delete_key")
            if edited is None:
                return f"{kind} {path.name} line {at + 1} of {cell.name}: no JSON to edit"
            lines[at] = edited.encode()
        path.write_bytes(b"".join(line + b"\n" for line in lines))
    else:
        edited = _edit_json(rng, data.decode("utf-8", "replace"), delete=kind == "delete_key")
        if edited is None:
            return f"{kind} {path.name} of {cell.name}: no JSON to edit"
        path.write_text(edited)
    return f"{kind} {path.name} of {cell.name}"


# Readers --------------------------------------------------------------------------------

class Hang(Exception):
    """A reader ran past TRIAL_LIMIT_S."""


def _alarm(signum, frame):
    raise Hang


def read_everything(runs: Path, out: Path) -> list[str]:
    """Run the four readers over ``runs`` (outputs under ``out``); what went wrong."""
    problems = []

    def run(*argv: str) -> None:
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                status = cli(["-q", *argv])
        except Hang:
            raise
        except BaseException as error:  # a traceback, in the real CLI
            problems.append(f"{argv[0]}: {type(error).__name__}: {error}"[:300])
            return
        if status not in EXIT_CODES:
            problems.append(f"{argv[0]}: exit {status}")
        if "Traceback" in said.getvalue():
            problems.append(f"{argv[0]}: a traceback in its output")

    reports = out / "reports"
    run("aggregate", str(runs), "--out", str(reports))
    run("report", str(reports), "--out", str(reports / "index.html"), "--results", str(runs))
    viewer = Viewer(runs)
    paths = ["/", "/data/cells.json"]
    for cell in sorted(runs.iterdir()):
        if cell.is_dir():
            for index in (0, 1):
                run("replay", str(cell), "--episode", str(index))
                paths.append(f"/data/cells/{cell.name}/{index}.json")
            paths.append(f"/data/cells/{cell.name}/episodes.json")
    for path in paths:
        try:
            viewer.answer(path)
        except Hang:
            raise
        except Exception as error:  # a 500 in the served viewer
            problems.append(f"view {path}: {type(error).__name__}: {error}"[:300])
    return problems


def files_outside(root: Path, allowed: tuple[Path, ...]) -> list[str]:
    return [str(p) for p in root.rglob("*")
            if not p.is_dir() and not any(p.is_relative_to(a) for a in allowed)]


@dataclass
class Outcome:
    trials: int = 0
    mutations: int = 0
    problems: list[str] = field(default_factory=list)
    slowest_s: float = 0.0
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    kinds: Counter = field(default_factory=Counter)


def fuzz(work: Path, trials: int, seed: int, max_mutations: int = 3,
         only: int | None = None) -> Outcome:
    """``trials`` damaged copies of a real tree under ``work``, each read by everything
    (``only``: trial ``only`` alone is read, the same trial as in the whole run)."""
    rng = random.Random(seed)
    pristine = base_tree(work / "pristine")
    outcome = Outcome()
    started = time.perf_counter()
    previous = signal.signal(signal.SIGALRM, _alarm)
    quiet = logging.getLogger("balrog_worker")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # the readers warn about each damaged record
    try:
        for trial in range(trials):
            # Deep under the work folder: climbing out of the tree stays inside `work`.
            root = work / f"t{trial}" / "a" / "b" / "c"
            runs = root / "lab" / "runs"
            shutil.copytree(pristine, runs, symlinks=True)
            done = [mutate(rng, runs) for _ in range(rng.randint(1, max_mutations))]
            outcome.mutations += len(done)
            outcome.kinds.update(d.split()[0] for d in done)
            if only is not None and trial != only:
                shutil.rmtree(work / f"t{trial}")
                continue
            began = time.perf_counter()
            signal.alarm(TRIAL_LIMIT_S)
            try:
                problems = read_everything(runs, root / "lab" / "out")
            except Hang:
                problems = [f"ran past {TRIAL_LIMIT_S} s"]
            finally:
                signal.alarm(0)
            outcome.slowest_s = max(outcome.slowest_s, time.perf_counter() - began)
            escaped = files_outside(work / f"t{trial}", (root / "lab",))
            problems += [f"written outside: {path}" for path in escaped]
            outcome.problems += [f"trial {trial} ({'; '.join(done)}): {p}" for p in problems]
            outcome.trials += 1
            shutil.rmtree(work / f"t{trial}", ignore_errors=True)
    finally:
        signal.signal(signal.SIGALRM, previous)
        quiet.setLevel(level)
    outcome.seconds = time.perf_counter() - started
    outcome.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return outcome


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", type=int, help="read trial ONLY alone (to look into it)")
    args = parser.parse_args()
    if args.only is not None:
        logging.basicConfig(level=logging.INFO)
    with tempfile.TemporaryDirectory() as work:
        outcome = fuzz(Path(work), args.trials, args.seed, only=args.only)
    print(f"trials: {outcome.trials}, mutations: {outcome.mutations} "
          f"({', '.join(f'{k} {n}' for k, n in sorted(outcome.kinds.items()))})")
    print(f"time: {outcome.seconds:.1f} s in all, slowest trial {outcome.slowest_s:.2f} s; "
          f"peak RSS {outcome.peak_rss_mb:.0f} MB")
    print(f"problems: {len(outcome.problems)}")
    for problem in outcome.problems[:50]:
        print("  " + problem)


if __name__ == "__main__":
    main()
