"""Crashes: SIGKILL at random moments, then resume, as a user would.

A pipeline (Snakemake, every process of it) and a single `balrog-worker run` are killed
several times at seeded random moments spread over an uninterrupted run's duration, then
run again to the end. The records must equal those of the uninterrupted run (timing
fields aside): same episodes, same steps, no episode twice, no torn line.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from balrog_worker.store import read_jsonl

from .test_workflow import ENV, make_project

BIN = Path(sys.executable).parent
TIMING = {"duration_s", "latency_s"}


def cell_records(cell: Path) -> tuple[list[dict], list[dict]]:
    """A cell's episode and step records without timing fields, after checking that no
    line is torn and no episode is recorded twice."""
    found = {}
    for name in ("episodes.jsonl", "steps.jsonl"):
        path = cell / name
        records, torn = read_jsonl(path)
        assert torn == 0, f"{path}: {torn} torn or corrupt lines"
        assert path.read_bytes().endswith(b"\n")
        found[name] = [{k: v for k, v in r.items() if k not in TIMING} for r in records]
    episodes, steps = found["episodes.jsonl"], found["steps.jsonl"]
    indices = [e["episode_index"] for e in episodes]
    assert len(indices) == len(set(indices)), f"{cell}: an episode is recorded twice"
    keys = [(s["episode_index"], s["step"], s["agent_id"]) for s in steps]
    assert len(keys) == len(set(keys)), f"{cell}: a step is recorded twice"
    assert not any(e["failed"] for e in episodes)
    return (sorted(episodes, key=lambda e: e["episode_index"]),
            sorted(steps, key=lambda s: (s["episode_index"], s["step"], s["agent_id"])))


def all_records(results: Path) -> dict:
    return {cell.name: cell_records(cell) for cell in sorted(results.iterdir())
            if cell.is_dir()}


def same_values(a, b) -> bool:
    """Equal JSON-like values, numbers (and numeric strings) to 1e-9 relative."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_values(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(same_values, a, b))
    try:
        return float(a) == pytest.approx(float(b), rel=1e-9, nan_ok=True)
    except (TypeError, ValueError):
        return a == b


def group_processes(pgid: int) -> list[str]:
    """The command lines of the live processes in process group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, ProcessLookupError):
            continue
        if cmdline and "(zombie)" not in cmdline:
            found.append(cmdline.strip())
    return found


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(60)
    deadline = time.monotonic() + 10
    while group_processes(proc.pid):  # nothing of the group may survive
        assert time.monotonic() < deadline, group_processes(proc.pid)
        time.sleep(0.05)


def start(args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``args`` in a process group of its own (so that one signal reaches every job)."""
    return subprocess.Popen(args, cwd=cwd, env=ENV, stdout=log.open("w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def run_until(proc: subprocess.Popen, kill_at: float) -> bool:
    """Wait until ``kill_at`` (monotonic); True if the process is still running then."""
    while time.monotonic() < kill_at:
        if proc.poll() is not None:
            return False
        time.sleep(0.02)
    return proc.poll() is None


# --- (a) the whole pipeline ------------------------------------------------------------

PIPELINE = {
    "seed": 7,
    "paths": {"results": "results/runs", "reports": "reports"},
    "evaluation": {"parallel_episodes": 2},
    "models": {"random": {"backend": "random"}},
    "agents": {"naive": {}},
    "envs": {"babyai": {"tasks": ["goto", "pickup"], "episodes": 60,
                        "max_steps": 40}},
    "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]},
}
SNAKEMAKE = [str(BIN / "snakemake"), "--cores", "2"]


def pipeline_project(repo: Path, dest: Path) -> Path:
    project = make_project(repo, dest, PIPELINE)
    if (repo / "profiles").is_dir() and not (project / "profiles").exists():
        shutil.copytree(repo / "profiles", project / "profiles")
    return project


def resume_as_a_user(project: Path, log: Path, actions: list[str]) -> subprocess.Popen:
    """Start the pipeline again the way a user would after a crash: run the same command;
    where Snakemake refuses, do what its message says and run it again."""
    extra: list[str] = []
    for _ in range(4):
        proc = start(SNAKEMAKE + extra, project, log)
        deadline = time.monotonic() + 120
        while proc.poll() is None and not any(
                sign in log.read_text() for sign in ("Job stats:", "Nothing to be done")):
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.02)  # until it holds the lock and has planned its jobs
        if proc.poll() is None or proc.returncode == 0:
            return proc
        output = log.read_text()
        if "--unlock" in output and "LockException" in output:
            actions.append("unlock")
            subprocess.run([*SNAKEMAKE, "--unlock"], cwd=project, env=ENV, check=True,
                           capture_output=True, timeout=300)
        elif "--rerun-incomplete" in output:
            actions.append("rerun-incomplete")
            extra = ["--rerun-incomplete"]
        else:
            raise AssertionError(f"snakemake failed after a crash:\n{output[-3000:]}")
    raise AssertionError("the pipeline could not be resumed")


@pytest.mark.slow
def test_a_pipeline_killed_three_times_ends_with_the_records_of_an_uninterrupted_run(
        repo, tmp_path):
    rng = random.Random(9001)
    # The uninterrupted run: its records, its tables, and its duration (for kill times).
    reference = pipeline_project(repo, tmp_path / "reference")
    started = time.monotonic()
    proc = start(SNAKEMAKE, reference, tmp_path / "reference.log")
    assert proc.wait(600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    duration = time.monotonic() - started

    project = pipeline_project(repo, tmp_path / "crashed")
    log = tmp_path / "crashed.log"
    kills, interrupted, actions = 0, [], []
    proc = start(SNAKEMAKE, project, log)
    launched = time.monotonic()
    while kills < 3:
        # A random moment of what is left: startup, cells and tables are about 40% of the
        # uninterrupted run, the cells' episodes the rest (a resumed run plays fewer).
        done = sum(len(read_jsonl(cell / "episodes.jsonl")[0])
                   for cell in (project / "results" / "runs").glob("*"))
        left = 0.4 + 0.6 * (1 - done / 120)
        kill_at = launched + rng.uniform(0.1, 0.9) * duration * left
        if not run_until(proc, kill_at):
            assert proc.returncode == 0, log.read_text()[-3000:]
            break  # it finished before this kill was due
        jobs = [cmd for cmd in group_processes(proc.pid) if "balrog_worker" in cmd
                or "--target-jobs" in cmd]
        kill_group(proc)
        kills += 1
        if jobs:
            interrupted.append(sorted({cmd.split(" -m balrog_worker ")[-1].split()[0]
                                       if " -m balrog_worker " in cmd else "cell_config"
                                       for cmd in jobs}))
        proc = resume_as_a_user(project, log, actions)
        launched = time.monotonic()
    assert proc.wait(600) == 0, log.read_text()[-3000:]
    print(f"\npipeline: uninterrupted {duration:.1f}s; {kills} SIGKILLs, "
          f"{len(interrupted)} with jobs in flight {interrupted}; user actions: {actions}")
    assert kills == 3 and len(interrupted) >= 1

    expected = all_records(reference / "results" / "runs")
    got = all_records(project / "results" / "runs")
    assert sorted(got) == sorted(expected) and len(got) == 2
    for cell in expected:
        assert [e["episode_index"] for e in got[cell][0]] == list(range(60))
        assert got[cell] == expected[cell], cell
    # The tables and metrics too (floats up to summation order: lines are appended in
    # the order episodes end, which differs from run to run).
    for table in ("leaderboard.csv", "per_task.csv"):
        rows = [list(csv.reader((root / "reports" / "tables" / table).open()))
                for root in (project, reference)]
        assert same_values(*rows), table
    assert same_values(*(json.loads((root / "reports" / "metrics.json").read_text())
                         for root in (project, reference)))
    assert (project / "reports" / "index.html").exists()


# --- (b) one `balrog-worker run` ---------------------------------------------------------

RUN = [str(BIN / "balrog-worker"), "run", "--env", "babyai/goto", "--model", "random",
       "--episodes", "200", "--max-steps", "40", "--seed", "5", "--parallel", "4"]


def test_a_run_killed_four_times_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    rng = random.Random(4242)
    reference = tmp_path / "reference"
    started = time.monotonic()
    proc = start([*RUN, "--out", str(reference)], tmp_path, tmp_path / "reference.log")
    while not (reference / "steps.jsonl").exists() and proc.poll() is None:
        time.sleep(0.01)
    startup = time.monotonic() - started  # imports and the first episode's steps
    assert proc.wait(300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    duration = time.monotonic() - started

    out = tmp_path / "crashed"
    kills, interrupted, recoveries = 0, 0, 0
    for attempt in range(4):
        log = tmp_path / f"attempt{attempt}.log"
        steps = out / "steps.jsonl"
        size_before = steps.stat().st_size if steps.exists() else 0
        done = len(read_jsonl(out / "episodes.jsonl")[0])
        # A kill at a random moment of what is left to play (a resumed run has less).
        ahead = (duration - startup) * (200 - done) / 200
        launched = time.monotonic()
        proc = start([*RUN, "--out", str(out)], tmp_path, log)
        if not run_until(proc, launched + startup + rng.uniform(0.0, 0.9) * ahead):
            assert proc.returncode == 0, log.read_text()[-3000:]
            break
        size_at_kill = steps.stat().st_size if steps.exists() else 0
        kill_group(proc)
        kills += 1
        unfinished = not (out / "summary.json").exists()
        interrupted += unfinished and size_at_kill > size_before
        recoveries += "those episodes will be run again" in log.read_text()
    final = subprocess.run([*RUN, "--out", str(out)], cwd=tmp_path, env=ENV,
                           capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr[-3000:]
    recoveries += "those episodes will be run again" in final.stderr
    print(f"\nsingle run: uninterrupted {duration:.1f}s; {kills} SIGKILLs, {interrupted} "
          f"mid-play; {recoveries} resumes dropped torn or orphan records")
    assert kills == 4 and interrupted >= 3

    expected = cell_records(reference)
    got = cell_records(out)
    assert [e["episode_index"] for e in got[0]] == list(range(200))
    assert got == expected
    summary = json.loads((out / "summary.json").read_text())
    assert summary["aggregate"]["episodes"] == 200
