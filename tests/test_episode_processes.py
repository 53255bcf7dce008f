"""A cell's episodes over worker processes (``run --processes``): the same records as one
process, the response cache shared, and a killed worker or a stopped run losing only the
episodes in flight, which a rerun plays."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import yaml

from tests.conftest import BIN, run_cli
from tests.stubs.openai_server import openai_stub

TIMING = ("duration_s", "latency_s")  # what differs between two runs of the same episodes


def records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        for key in TIMING:
            row.pop(key, None)
    return sorted(rows, key=lambda r: (r.get("episode_index"), r.get("step", -1),
                                       r.get("player", "")))


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def test_worker_processes_record_what_one_process_records(tmp_path):
    """Same seeds, same actions, same records; the steps streamed as they are played."""
    common = ("run", "--env", "babyai/goto", "--model", "random", "--episodes", "6",
              "--max-steps", "10", "--parallel", "4", "--cache", "off")
    run_cli(*common, "--out", str(tmp_path / "one"))
    streamed = run_cli(*common, "--out", str(tmp_path / "three"), "--processes", "3",
                       "--emit-jsonl")
    assert "over 3 worker processes" in streamed.stderr
    for name in ("episodes.jsonl", "steps.jsonl"):
        assert records(tmp_path / "one" / name) == records(tmp_path / "three" / name)
    kinds = [json.loads(line).get("kind") or json.loads(line).get("type")
             for line in streamed.stdout.splitlines()]
    steps = len((tmp_path / "three" / "steps.jsonl").read_text().splitlines())
    assert kinds.count("step") == steps and kinds.count("episode") == 6


def _params(tmp_path: Path, url: str) -> Path:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "models": {"stub": {"backend": "openai_compatible", "model": "stub",
                            "base_url": f"{url}/v1", "max_retries": 0}},
        "agents": {"naive": {}}, "envs": {"babyai": {"tasks": ["goto"]}},
        "grid": {"models": ["stub"], "agents": ["naive"], "envs": ["babyai"]}}))
    return params


def test_worker_processes_share_the_response_cache(tmp_path):
    with openai_stub(answer="turn left") as stub:
        def run(out: str):
            run_cli("run", "--params", str(_params(tmp_path, stub.url)), "--env",
                    "babyai/goto", "--model", "stub", "--episodes", "4", "--max-steps", "5",
                    "--parallel", "4", "--processes", "2", "--out", str(tmp_path / out),
                    env={"BALROG_WORKER_CACHE": str(tmp_path / "cache")})
        run("first")
        made = len(stub.requests)
        run("again")  # a fresh results folder: every answer is in the cache
        assert made == 20 and len(stub.requests) == made
    assert records(tmp_path / "first" / "steps.jsonl") == records(
        tmp_path / "again" / "steps.jsonl")


def _slow_run(tmp_path: Path, url: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [str(BIN / "balrog-worker"), "run", "--params", str(_params(tmp_path, url)),
         "--env", "babyai/goto", "--model", "stub", "--episodes", "6", "--max-steps", "6",
         "--parallel", "2", "--processes", "2", "--cache", "off", "--out", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BALROG_WORKER_CACHE": str(tmp_path / "cache")})


def _wait_for_episodes(out: Path, count: int, run: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while True:
        done = out / "episodes.jsonl"
        if done.exists() and len(done.read_text().splitlines()) >= count:
            return
        assert run.poll() is None, run.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.02)


def _indices(out: Path) -> list[int]:
    return [json.loads(line)["episode_index"]
            for line in (out / "episodes.jsonl").read_text().splitlines()]


def slow_answer(body: dict) -> str:
    time.sleep(0.05)
    return "turn left"  # never ends a goto episode: every episode plays its 6 steps


def test_a_killed_worker_loses_only_its_episode_and_a_rerun_plays_it(tmp_path):
    out = tmp_path / "out"
    with openai_stub(answer_fn=slow_answer) as stub:
        run = _slow_run(tmp_path, stub.url, out)
        _wait_for_episodes(out, 1, run)
        workers = children(run.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 1, stderr
        (line,) = [row for row in stderr.splitlines() if "error" in row]
        assert "1 episodes unfinished" in line and "killed by SIGKILL" in line
        kept = _indices(out)
        assert len(kept) == 5 and len(set(kept)) == 5  # the other worker played on
        before = len(stub.requests)
        again = run_cli("run", "--params", str(tmp_path / "params.yaml"), "--env",
                        "babyai/goto", "--model", "stub", "--episodes", "6", "--max-steps",
                        "6", "--processes", "2", "--cache", "off", "--out", str(out))
        assert "5 of 6 episodes already recorded" in again.stderr
        assert len(stub.requests) - before == 6  # the lost episode, and nothing else
    assert sorted(_indices(out)) == list(range(6))


def test_sigterm_stops_the_workers_and_keeps_finished_episodes(tmp_path):
    out = tmp_path / "out"
    with openai_stub(answer_fn=slow_answer) as stub:
        run = _slow_run(tmp_path, stub.url, out)
        _wait_for_episodes(out, 2, run)
        workers = children(run.pid)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 128 + signal.SIGTERM, stderr
        assert "terminated (SIGTERM)" in stderr
        assert not [pid for pid in workers if Path(f"/proc/{pid}").exists()
                    and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
        kept = _indices(out)
        assert len(kept) == len(set(kept)) >= 2
        run_cli("run", "--params", str(tmp_path / "params.yaml"), "--env", "babyai/goto",
                "--model", "stub", "--episodes", "6", "--max-steps", "6", "--processes",
                "2", "--cache", "off", "--out", str(out))
    assert sorted(_indices(out)) == list(range(6))
    steps = [(s["episode_index"], s["step"]) for s in records(out / "steps.jsonl")]
    assert len(steps) == len(set(steps)) == 36  # nothing played twice, nothing lost


def test_the_budget_holds_across_worker_processes(tmp_path):
    """No episode starts once the committed ones have spent the budget; a rerun with a
    larger budget plays the rest."""
    with openai_stub(answer="turn left") as stub:
        params = _params(tmp_path, stub.url)
        data = yaml.safe_load(params.read_text())
        data["prices"] = {"stub": {"input": 1.0, "output": 2.0}}
        params.write_text(yaml.safe_dump(data))
        args = ("run", "--params", str(params), "--env", "babyai/goto", "--model", "stub",
                "--episodes", "6", "--max-steps", "3", "--parallel", "2", "--processes",
                "2", "--cache", "off", "--out", str(tmp_path / "out"))
        spent = run_cli(*args, "--budget-usd", "0.000001", check=False)
        assert spent.returncode == 4, spent.stderr  # the budget's exit status
        assert len(_indices(tmp_path / "out")) == 2  # the first two, one a worker
        assert len(stub.requests) == 2 * 3
        run_cli(*args, "--budget-usd", "100")
    assert sorted(_indices(tmp_path / "out")) == list(range(6))
