"""Crashes: SIGKILL at random moments, then resume, as a user would.

A pipeline (Snakemake, every process of it) and a single `balrog-worker run` are killed
several times at seeded random moments, then run again to the end. The moments are
seeded random points of progress through the episodes plus a random few milliseconds
(so each kill lands mid-play whatever the machine's load), and for the pipeline one more
at a random moment of its tail (tables, figures, page), timed on an uninterrupted run.
The records must equal those of the uninterrupted run (timing fields aside): same
episodes, same steps, no episode twice, no torn line.
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


def committed(paths) -> int:
    """Episode records committed so far (complete lines) in the files ``paths``."""
    return sum(p.read_bytes().count(b"\n") for p in paths if p.exists())


def kill_moment(proc: subprocess.Popen, count, target: int, jitter: float) -> bool:
    """Wait until ``count()`` reaches ``target``, then ``jitter`` seconds more; True if
    the process is still running then."""
    while count() < target:
        if proc.poll() is not None:
            return False
        time.sleep(0.005)
    return run_until(proc, time.monotonic() + jitter)


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


def resume_as_a_user(project: Path, log: Path, actions: list[str],
                     command: list[str] = SNAKEMAKE) -> subprocess.Popen:
    """Start the pipeline again the way a user would after a crash: run the same command;
    where Snakemake refuses, do what its message says and run it again."""
    extra: list[str] = []
    for _ in range(4):
        proc = start(command + extra, project, log)
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
def test_a_pipeline_killed_four_times_ends_with_the_records_of_an_uninterrupted_run(
        repo, tmp_path):
    rng = random.Random(9001)
    # The uninterrupted run: its records, its tables, and how long its tail (the tables,
    # figures and page after the last cell) takes.
    reference = pipeline_project(repo, tmp_path / "reference")
    started = time.monotonic()
    proc = start(SNAKEMAKE, reference, tmp_path / "reference.log")
    summaries = [reference / "results" / "runs" / f"random__naive__babyai__{task}" /
                 "summary.json" for task in ("goto", "pickup")]
    while not all(p.exists() for p in summaries) and proc.poll() is None:
        time.sleep(0.02)
    cells_done = time.monotonic() - started
    assert proc.wait(600) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    duration = time.monotonic() - started
    tail = duration - cells_done

    project = pipeline_project(repo, tmp_path / "crashed")
    log = tmp_path / "crashed.log"
    episodes = project / "results" / "runs"
    kills, interrupted, actions = 0, [], []
    proc = start(SNAKEMAKE, project, log)

    def kill_now():
        nonlocal kills, proc
        jobs = {cmd.split(" -m balrog_worker ")[1].split()[0] if " -m balrog_worker " in cmd
                else "cell_config" for cmd in group_processes(proc.pid)
                if " -m balrog_worker " in cmd or "--target-jobs" in cmd}
        kill_group(proc)
        kills += 1
        interrupted.append(sorted(jobs))
        proc = resume_as_a_user(project, log, actions)

    # Three kills while the cells play, at seeded random points of their 120 episodes
    # (plus a few milliseconds, to land anywhere in a step), whatever the machine's load.
    for target in sorted(rng.sample(range(5, 115), 3)):
        if not kill_moment(proc, lambda: committed(episodes.glob("*/episodes.jsonl")),
                           target, rng.uniform(0.0, 0.05)):
            break
        kill_now()
    # One more at a random moment of the tail, if the run gets there before it ends.
    while (proc.poll() is None
           and len(list(episodes.glob("*/summary.json"))) < 2):
        time.sleep(0.02)
    if run_until(proc, time.monotonic() + rng.uniform(0.1, 0.9) * tail):
        kill_now()
    assert proc.wait(600) == 0, log.read_text()[-3000:]
    hit = [jobs for jobs in interrupted if jobs]
    print(f"\npipeline: uninterrupted {duration:.1f}s; {kills} SIGKILLs, {len(hit)} with "
          f"jobs in flight {interrupted}; user actions: {actions}")
    assert kills >= 3 and sum("run" in jobs for jobs in interrupted) >= 3
    assert "rerun-incomplete" not in actions  # the default profile reruns those jobs

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


@pytest.mark.slow
def test_snakemake_killed_alone_needs_only_an_unlock(repo, tmp_path):
    """Snakemake SIGKILLed by itself (the OOM killer's choice) while a job runs on: the
    job finishes its output, which Snakemake had marked incomplete. The next run needs
    `--unlock` and nothing else (no `--rerun-incomplete`), and loses nothing."""
    project = make_project(repo, tmp_path / "project",
                           {**PIPELINE, "envs": {"babyai": {"tasks": ["goto"],
                                                            "episodes": 60,
                                                            "max_steps": 40}}})
    log = tmp_path / "snakemake.log"
    cell = project / "results" / "runs" / "random__naive__babyai__goto"
    proc = start([*SNAKEMAKE, "evaluate_all"], project, log)
    deadline = time.monotonic() + 300
    while not (cell / "steps.jsonl").exists():
        assert time.monotonic() < deadline and proc.poll() is None, log.read_text()[-3000:]
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)  # Snakemake only; its job plays on
    proc.wait(60)
    while any(" -m balrog_worker run " in cmd for cmd in group_processes(proc.pid)):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (cell / "summary.json").exists()
    assert list((project / ".snakemake" / "incomplete").iterdir())  # marked incomplete

    actions: list[str] = []
    proc = resume_as_a_user(project, log, actions, [*SNAKEMAKE, "evaluate_all"])
    assert proc.wait(600) == 0, log.read_text()[-3000:]
    assert actions == ["unlock"]
    episodes, steps = cell_records(cell)
    assert [e["episode_index"] for e in episodes] == list(range(60))
    assert len(steps) == sum(e["num_steps"] for e in episodes)


# --- (b) one `balrog-worker run` ---------------------------------------------------------

RUN = [str(BIN / "balrog-worker"), "run", "--env", "babyai/goto", "--model", "random",
       "--episodes", "200", "--max-steps", "40", "--seed", "5", "--parallel", "4"]


def test_a_run_killed_four_times_resumes_to_the_records_of_an_uninterrupted_run(tmp_path):
    rng = random.Random(4242)
    reference = tmp_path / "reference"
    started = time.monotonic()
    proc = start([*RUN, "--out", str(reference)], tmp_path, tmp_path / "reference.log")
    assert proc.wait(300) == 0, (tmp_path / "reference.log").read_text()[-3000:]
    duration = time.monotonic() - started

    out = tmp_path / "crashed"
    kills, interrupted, recoveries = 0, 0, 0
    # Four kills at seeded random points of the 200 episodes, plus up to 30 ms (an
    # episode takes about that long), so that each lands mid-play whatever the load.
    for attempt, target in enumerate(sorted(rng.sample(range(5, 195), 4))):
        log = tmp_path / f"attempt{attempt}.log"
        steps = out / "steps.jsonl"
        size_before = steps.stat().st_size if steps.exists() else 0
        proc = start([*RUN, "--out", str(out)], tmp_path, log)
        if not kill_moment(proc, lambda: committed([out / "episodes.jsonl"]), target,
                           rng.uniform(0.0, 0.03)):
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
