"""The SQLite response cache and the result files under concurrent jobs: many processes
write and read one cache at once without a lock error, a writer SIGKILLed mid-write never
corrupts it or loses a committed entry, two runs cannot interleave one cell's records, and
a Snakemake run with parallel jobs shares one cache (a replay then calls no model)."""

from __future__ import annotations

import json
import multiprocessing
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from balrog_worker.clients.base import Completion
from balrog_worker.clients.cache import ResponseCache
from balrog_worker.store import read_jsonl
from tests.stubs import openai_server

from .conftest import run_cli
from .test_workflow import ENV, make_project

WRITERS = 8
KEYS_EACH = 150
SHARED_KEYS = 20  # every process writes these same keys too (contended overwrites)


def _entry(writer: int, i: int) -> Completion:
    return Completion(text=f"w{writer}-{i}", input_tokens=i, output_tokens=writer)


def _hammer(path: str, writer: int, barrier, errors) -> None:
    """Open the (maybe not yet created) cache when all do, then interleave writes of its
    own keys, overwrites of the shared keys and reads of everyone's keys."""
    try:
        barrier.wait(60)
        cache = ResponseCache(Path(path))
        rng = random.Random(writer)
        for i in range(KEYS_EACH):
            cache.put(f"w{writer}-{i}", _entry(writer, i))
            if i % 5 == 0:
                cache.put(f"shared-{(i // 5) % SHARED_KEYS}",
                          Completion(text=f"shared by {writer}"))
            other = rng.randrange(WRITERS)
            got = cache.get(f"w{other}-{rng.randrange(KEYS_EACH)}")
            assert got is None or got.text.startswith(f"w{other}-")
            mine = cache.get(f"w{writer}-{i}")
            assert mine == _entry(writer, i), mine  # a process reads its own write back
        cache.close()
    except BaseException as error:  # reported to the parent, which fails the test
        errors.put(f"writer {writer}: {type(error).__name__}: {error}")
        raise


def integrity(path: Path) -> str:
    with sqlite3.connect(path) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def test_eight_processes_share_a_fresh_cache_without_lock_errors(tmp_path):
    path = tmp_path / "cache" / "responses.sqlite"  # nobody has created it yet
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(WRITERS), ctx.Queue()
    workers = [ctx.Process(target=_hammer, args=(str(path), k, barrier, errors))
               for k in range(WRITERS)]
    started = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    reported = []
    while not errors.empty():
        reported.append(errors.get())
    assert reported == []
    assert [w.exitcode for w in workers] == [0] * WRITERS
    print(f"{WRITERS} processes, {WRITERS * KEYS_EACH} entries: "
          f"{time.perf_counter() - started:.1f}s")
    assert integrity(path) == "ok"
    cache = ResponseCache(path)
    for writer in range(WRITERS):
        for i in range(KEYS_EACH):
            assert cache.get(f"w{writer}-{i}") == _entry(writer, i)
    for k in range(SHARED_KEYS):
        assert cache.get(f"shared-{k}").text.startswith("shared by ")
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    assert rows == WRITERS * KEYS_EACH + SHARED_KEYS


# A writer that acknowledges each committed entry on stdout, then goes on, until killed.
WRITER = """
import sys
from pathlib import Path
from balrog_worker.clients.base import Completion
from balrog_worker.clients.cache import ResponseCache

path, name, start = sys.argv[1], sys.argv[2], int(sys.argv[3])
cache = ResponseCache(Path(path))
i = start
while True:
    text = f"{name}-{i} " + "x" * (64 + (i * 7919) % 16000)  # some large: WAL checkpoints
    cache.put(f"{name}-{i}", Completion(text=text, input_tokens=i))
    if i % 10 == 9:  # puts are written behind: acknowledged once flushed
        cache.flush()
        print(i, flush=True)
    i += 1
"""


class Writer:
    """A writer process and the last entry it acknowledged (read from its stdout)."""

    def __init__(self, path: Path, name: str, start: int):
        self.name, self.acknowledged = name, start - 1
        self.proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), name,
                                      str(start)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.acknowledged = int(line)

    def kill(self) -> int:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)
        self._reader.join(30)
        return self.proc.returncode


def test_writers_sigkilled_mid_write_never_corrupt_the_cache(tmp_path):
    """Two writers at once, SIGKILLed at random moments, five times over: the file stays
    intact and every acknowledged entry (flushed: its transaction committed) is there,
    whole."""
    path = tmp_path / "responses.sqlite"
    rng = random.Random(20241124)
    next_index = {"a": 0, "b": 0}
    committed = 0
    for _ in range(5):
        writers = [Writer(path, name, next_index[name]) for name in next_index]
        deadline = time.monotonic() + 60
        while min(w.acknowledged - next_index[w.name] for w in writers) < 20:
            assert time.monotonic() < deadline, [w.proc.stderr.read() for w in writers]
            assert all(w.proc.poll() is None for w in writers)
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        assert [w.kill() for w in writers] == [-signal.SIGKILL] * 2
        assert integrity(path) == "ok"
        cache = ResponseCache(path)
        for w in writers:
            for i in range(w.acknowledged + 1):
                entry = cache.get(f"{w.name}-{i}")
                assert entry is not None, f"{w.name}-{i} acknowledged but lost"
                assert entry.text.startswith(f"{w.name}-{i} ") and entry.input_tokens == i
            committed += w.acknowledged + 1 - next_index[w.name]
            next_index[w.name] = w.acknowledged + 1
        cache.close()
    print(f"5 rounds of SIGKILL, {committed} acknowledged entries all intact")
    assert committed >= 200


def test_two_runs_of_one_cell_at_once_never_interleave_its_records(tmp_path):
    args = ["-q", "run", "--env", "babyai/goto", "--model", "random", "--episodes", "200",
            "--max-steps", "30", "--parallel", "2", "--out", str(tmp_path / "cell")]
    exe = Path(sys.executable).parent / "balrog-worker"
    first = subprocess.Popen([str(exe), *args], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    deadline = time.monotonic() + 60
    while not (tmp_path / "cell" / "steps.jsonl").exists():  # the first is playing
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.01)
    second = run_cli(*args, cwd=tmp_path, check=False)
    _, first_err = first.communicate(timeout=120)
    assert first.returncode == 0, first_err
    if second.returncode == 0:  # the first finished before the second took the lock
        pytest.skip("the first run ended before the second started")
    assert second.returncode == 2
    assert second.stderr.count("\n") == 1 and "another run is writing" in second.stderr
    episodes, torn = read_jsonl(tmp_path / "cell" / "episodes.jsonl")
    steps, torn_steps = read_jsonl(tmp_path / "cell" / "steps.jsonl")
    assert torn == torn_steps == 0
    assert sorted(e["episode_index"] for e in episodes) == list(range(200))
    assert len(steps) == sum(e["num_steps"] for e in episodes)


def snakemake(*args: str, cwd: Path, env: dict) -> None:
    result = subprocess.run(["snakemake", *args], cwd=cwd, env={**ENV, **env},
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _records(results: Path) -> dict:
    """Every cell's episode and step records, timing fields dropped, in a stable order."""
    out = {}
    for cell in sorted(p for p in results.iterdir() if p.is_dir()):
        episodes, torn = read_jsonl(cell / "episodes.jsonl")
        steps, torn_steps = read_jsonl(cell / "steps.jsonl")
        assert torn == torn_steps == 0
        out[cell.name] = (
            sorted(({k: v for k, v in e.items() if k != "duration_s"} for e in episodes),
                   key=lambda e: e["episode_index"]),
            sorted(({k: v for k, v in s.items() if k != "latency_s"} for s in steps),
                   key=lambda s: (s["episode_index"], s["step"], s["agent_id"])),
        )
    return out


@pytest.mark.slow
def test_parallel_snakemake_jobs_share_one_cache_and_a_replay_calls_no_model(repo, tmp_path):
    """Three cells of an OpenAI-compatible model (a stub server on 127.0.0.1) run as
    parallel Snakemake jobs, each playing three episodes at once, all writing one cache.
    Then the three cells are replayed at once into new directories: every call a hit."""
    cache_dir = tmp_path / "cache"
    env = {"BALROG_WORKER_CACHE": str(cache_dir)}
    answers = ["go forward", "turn left", "turn right", "pick up", "toggle"]
    with openai_server.openai_stub(
            answer_fn=lambda body: answers[len(json.dumps(body)) % len(answers)]) as stub:
        params = {
            "seed": 11,
            "paths": {"results": "results/runs", "reports": "reports"},
            "evaluation": {"parallel_episodes": 3},
            "models": {"stub": {"backend": "openai_compatible", "model": "stub-model",
                                "base_url": stub.url + "/v1", "max_retries": 2,
                                "timeout_s": 30}},
            "agents": {"naive": {}},
            "envs": {"babyai": {"tasks": ["goto", "pickup", "open"],
                                "episodes": 3, "max_steps": 8}},
            "grid": {"models": ["stub"], "agents": ["naive"], "envs": ["babyai"]},
        }
        project = make_project(repo, tmp_path / "project", params)
        started = time.perf_counter()
        snakemake("--cores", "4", "evaluate_all", cwd=project, env=env)
        first_calls = len(stub.requests)
        results = project / "results" / "runs"
        replays = [subprocess.Popen(
            [str(Path(sys.executable).parent / "balrog-worker"), "-q", "run", "--config",
             str(cell / "cell.json"), "--out", str(tmp_path / "replay" / cell.name)],
            env={**ENV, **env}, stderr=subprocess.PIPE, text=True)
            for cell in sorted(results.iterdir())]
        for replay in replays:
            _, err = replay.communicate(timeout=300)
            assert replay.returncode == 0, err
        replay_calls = len(stub.requests) - first_calls
        elapsed = time.perf_counter() - started
    first = _records(results)
    assert len(first) == 3
    for cell, (episodes, steps) in first.items():
        assert [e["episode_index"] for e in episodes] == [0, 1, 2], cell
        assert not any(e["failed"] for e in episodes), cell
        assert len(steps) == sum(e["num_steps"] for e in episodes) > 0
    calls = sum(len(steps) for _, steps in first.values())
    assert first_calls == calls  # one request per step: no retry, no lock error
    cache_file = cache_dir / "responses.sqlite"
    assert integrity(cache_file) == "ok"
    with sqlite3.connect(cache_file) as db:
        assert db.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == calls
    assert replay_calls == 0  # every call of the replays came from the shared cache
    assert _records(tmp_path / "replay") == first  # same trajectories and token counts
    print(f"3 cells x 3 episodes, {calls} calls cached by 3 parallel jobs, replayed by 3 "
          f"processes with 0 calls: {elapsed:.0f}s")
    logs = "".join(p.read_text() for p in (project / "logs" / "evaluate").iterdir())
    assert "database is locked" not in logs and "Traceback" not in logs


def test_a_lookup_neither_waits_for_nor_misses_an_answer_being_written(tmp_path):
    """Another process holds the write lock: this process's write-behind has taken its
    batch and waits. A lookup meanwhile answers at once, from that batch (it neither
    waits behind the transaction, stalling every episode, nor asks the model again)."""
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the other process's transaction
    try:
        cache.put("k", _entry(0, 1))
        deadline = time.monotonic() + 5
        while not cache._writing and time.monotonic() < deadline:  # the batch is taken
            time.sleep(0.01)
        assert cache._writing and not cache._pending
        started = time.monotonic()
        assert cache.get("k") == _entry(0, 1)
        assert cache.get("absent") is None
        assert time.monotonic() - started < 0.5
    finally:
        other.execute("ROLLBACK")
        other.close()
    cache.flush()
    cache.close()
    reopened = ResponseCache(path)
    assert reopened.get("k") == _entry(0, 1)  # written once the lock was free
    reopened.close()


def test_a_batch_larger_than_one_insert_is_written_whole(tmp_path, monkeypatch):
    """A write-behind batch goes in as several multi-row INSERTs (here 7 rows at most
    each, the last one shorter): every answer is kept, each under its own key."""
    monkeypatch.setattr("balrog_worker.clients.cache.MAX_ROWS_PER_INSERT", 7)
    path = tmp_path / "responses.sqlite"
    cache = ResponseCache(path)
    assert cache._rows_per_insert == 7
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # holds the writer back until all 50 are queued
    for index in range(50):
        cache.put(f"k{index}", _entry(index, index + 1))
    other.execute("ROLLBACK")
    cache.flush()
    assert other.execute("SELECT count(*) FROM responses").fetchone() == (50,)
    other.close()
    cache.close()
    reopened = ResponseCache(path)
    assert [reopened.get(f"k{index}") for index in range(50)] == [
        _entry(index, index + 1) for index in range(50)]
    reopened.close()
