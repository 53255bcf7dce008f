"""Issue 18: nine failures found by trying to break the project, each reproduced here.

1. paths a shell would act on (dvc.yaml's commands, the params schema)
2. a key echoed in an error, or riding in base_url / model
3. a call not bounded by its timeout (a server that drips its answer)
4. no bound on a response's size
5. paid calls uncounted when the cache cannot write
6. a damaged cache: fatal, sticky, and episodes recorded as failed
7. a full disk giving a traceback
8. serve dying on bytes that are not UTF-8; SIGTERM exiting silently
9. a changed grid ignored by the default target (in test_workflow.py, slow), and
   params that `dvc repro` cannot render
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from balrog_worker import cli
from balrog_worker.cells import Cell
from balrog_worker.clients import make_client
from balrog_worker.clients.base import Completion, Message, Request
from balrog_worker.clients.cache import CachedClient, ResponseCache
from balrog_worker.clients.errors import ModelError
from balrog_worker.clients.retry import RetryPolicy
from balrog_worker.config import AgentSpec, CellConfig, Generation, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl
from tests.conftest import run_cli
from tests.stubs import StubServer, anthropic_server, gemini_server, openai_server

from .test_workflow import SMALL, make_project, sh

BIN = Path(sys.executable).parent
REQUEST = Request(messages=(Message("system", "Play."), Message("user", "A door. Act?")),
                  valid_actions=("go forward", "turn left"), seed=7)
PROVIDERS = {  # backend -> (stub module, model id, key variable)
    "openai": (openai_server, "gpt-test", "OPENAI_API_KEY"),
    "anthropic": (anthropic_server, "claude-test", "ANTHROPIC_API_KEY"),
    "gemini": (gemini_server, "gemini-test", "GOOGLE_API_KEY"),
}


def spec(backend: str, url: str, **fields) -> ModelSpec:
    _, model, _ = PROVIDERS[backend]
    base = f"{url}/v1" if backend == "openai" else url
    return ModelSpec(**{"name": f"{backend}-t", "backend": backend, "model": model,
                        "base_url": base, "max_retries": 0, **fields})


@pytest.fixture(autouse=True)
def keys(monkeypatch, tmp_path):
    for _, _, variable in PROVIDERS.values():
        monkeypatch.setenv(variable, "test-key-0000")
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(tmp_path / "cache"))


def cell_config(model: ModelSpec, episodes: int = 2, max_steps: int = 3, **fields):
    return CellConfig(cell=Cell(model.name, "naive", "babyai", "goto"), model=model,
                      agent=AgentSpec("naive", "naive"), episodes=episodes,
                      max_steps=max_steps, **fields)


# 1. Paths -------------------------------------------------------------------------

EVIL_PATHS = ["res$(touch {marker})", "res`touch {marker}`", "res; touch {marker}",
              "res{{a}}", "-rf", "res'x", 'res"x', "res\nx"]


@pytest.mark.parametrize("evil", EVIL_PATHS)
def test_a_path_a_shell_or_snakemake_would_act_on_is_refused(evil, tmp_path):
    marker = tmp_path / "pwned"
    params = {**SMALL, "paths": {"results": evil.format(marker=marker), "reports": "r"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("validate", str(tmp_path / "params.yaml"), check=False)
    assert result.returncode == 2
    assert "paths.results" in result.stderr and "not a valid path" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_harmless_path_with_spaces_is_accepted(tmp_path):
    params = {**SMALL, "paths": {"results": "my results/runs", "reports": "my reports"}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    run_cli("validate", str(tmp_path / "params.yaml"))


def test_dvc_quotes_every_templated_value_of_its_commands(repo):
    stages = yaml.safe_load((repo / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        unquoted = re.sub(r"'[^']*'", "", stage["cmd"])  # what a shell sees outside quotes
        assert "${" not in unquoted, name


def test_dvc_runs_a_path_holding_shell_syntax_as_one_word(repo, tmp_path):
    """DVC itself (no schema in the way): the stage gets the path, and nothing runs."""
    evil = "res$(touch pwned)"
    project = make_project(repo, tmp_path / "project",
                           {**SMALL, "paths": {"results": evil, "reports": "reports"}})
    marker = project / "pwned"
    (project / evil).mkdir()  # a directory may well have that name
    result = sh("dvc", "repro", "--single-item", "aggregate", cwd=project, check=False)
    assert not marker.exists(), result.stdout + result.stderr
    assert evil in result.stdout  # the command DVC ran named the directory


# 2. Keys in errors ----------------------------------------------------------------

KEY = "sk-proj-" + "Ab3" * 16


def test_a_key_where_a_variable_name_belongs_is_refused_without_echo(tmp_path, repo):
    params = {**SMALL, "models": {"gpt": {"backend": "openai", "model": "gpt-4o",
                                          "api_key_env": KEY}},
              "grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["babyai"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("validate", str(tmp_path / "params.yaml"), check=False)
    assert result.returncode == 2 and "api_key_env" in result.stderr
    assert KEY not in result.stdout + result.stderr and KEY[:16] not in result.stderr
    project = make_project(repo, tmp_path / "project", params)
    planned = sh("snakemake", "-n", cwd=project, check=False)
    assert planned.returncode != 0 and "api_key_env" in planned.stdout + planned.stderr
    assert KEY[:16] not in planned.stdout + planned.stderr


@pytest.mark.parametrize("field", ["base_url", "model"])
def test_a_key_in_base_url_or_model_is_refused_without_echo(field, tmp_path):
    value = (f"https://user:{KEY}@example.com/v1" if field == "base_url" else KEY)
    model = {"backend": "openai_compatible", "model": "m", "base_url": "http://x/v1",
             field: value}
    params = {**SMALL, "models": {"m": model},
              "grid": {"models": ["m"], "agents": ["naive"], "envs": ["babyai"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("validate", str(tmp_path / "params.yaml"), check=False)
    assert result.returncode == 2 and "models.m" in result.stderr
    assert KEY[:16] not in result.stderr


def test_the_value_of_any_api_key_variable_is_never_echoed(tmp_path):
    secret = "hunter2hunter2hunter2"  # not shaped like a key: known by its variable
    params = {**SMALL, "grid": {"models": [secret], "agents": ["naive"], "envs": ["babyai"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("validate", str(tmp_path / "params.yaml"), check=False,
                     env={"TEAM_API_KEY": secret})
    assert result.returncode == 2 and "grid.models" in result.stderr
    assert secret not in result.stderr and "***" in result.stderr


def test_a_model_file_name_is_not_taken_for_a_key_but_opaque_tokens_are_hidden():
    from balrog_worker.secrets import looks_like_key, redact

    path = "/models/Qwen2_5_Coder_32B_Instruct_Q4_K_M_finetuned_v20241101.gguf"
    assert not looks_like_key(path)
    assert looks_like_key(KEY) and looks_like_key(f"https://u:{KEY}@host/v1")
    token = "AbCdEf" * 6 + "123456"
    assert redact(f"rejected {token} here") == "rejected *** here"


# 3. The deadline of a call ----------------------------------------------------------

@pytest.mark.parametrize("backend", list(PROVIDERS))
def test_a_dripping_server_cannot_hold_a_call_past_its_timeout(backend):
    stub_module, _, _ = PROVIDERS[backend]
    with StubServer(stub_module.ok_body, stub_module.error_body, script=["drip"],
                    drip_s=0.3) as stub:
        client = make_client(spec(backend, stub.url, timeout_s=2.0), "off")
        start = time.monotonic()
        with pytest.raises(ModelError, match="no complete answer within 2 s"):
            client.complete(REQUEST)
        elapsed = time.monotonic() - start
        client.close()
    assert 2.0 <= elapsed < 2.5, elapsed


def test_an_endless_chunked_drip_is_cut_at_the_deadline_and_retried():
    with openai_server.openai_stub(script=["endless_drip"], drip_s=0.2) as stub:
        client = make_client(spec("openai", stub.url, timeout_s=1.5, max_retries=1), "off")
        client.policy = RetryPolicy(max_retries=1, base_delay_s=0.01)
        start = time.monotonic()
        completion = client.complete(REQUEST)  # the retry gets an answer
        elapsed = time.monotonic() - start
        client.close()
    assert completion.text == "go forward" and completion.retries == 1
    assert elapsed < 1.5 + 1.0, elapsed


def test_a_timed_out_call_fails_its_episode_and_the_cell_goes_on(tmp_path):
    # Episodes run one at a time; the first call of the first episode drips.
    with openai_server.openai_stub(script=["drip"], drip_s=0.5) as stub:
        model = spec("openai", stub.url, timeout_s=1.0)
        report = run_cell(cell_config(model, parallel_episodes=1, cache="off"), tmp_path)
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert (report.ran, report.failed) == (2, 1)
    failed = next(e for e in episodes if e["failed"])
    assert "no complete answer within 1 s" in failed["error"]
    assert any(not e["failed"] and e["num_steps"] == 3 for e in episodes)


# 4. The size of a response ----------------------------------------------------------

def test_a_10_mb_answer_is_not_read_whole_stored_twice_or_sent_back(tmp_path):
    huge = "turn left " * 1_000_000  # 10 MB
    with openai_server.openai_stub(answer=huge) as stub:
        model = spec("openai", stub.url, generation=Generation(max_tokens=8))
        report = run_cell(cell_config(model, episodes=4, max_steps=3, cache="off"), tmp_path)
        sent = [len(json.dumps(r["body"])) for r in stub.requests]
    assert report.failed == 0
    steps, _ = read_jsonl(tmp_path / "steps.jsonl")
    assert len(steps) == 12 and all(s["answer_truncated"] for s in steps)
    assert all(s["completion"] == "" and not s["valid"] for s in steps)
    assert (tmp_path / "steps.jsonl").stat().st_size < 100_000
    assert max(sent) < 20_000  # the history sent back stays small
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert sum(e["llm_calls"] for e in episodes) == len(sent) == 12
    assert all(e["output_tokens"] == 3 * 8 for e in episodes)  # counted at max_tokens


def test_a_long_answer_within_the_body_cap_is_cut_to_max_answer_chars(tmp_path):
    with openai_server.openai_stub(answer="x" * 5000) as stub:
        model = spec("openai", stub.url, max_answer_chars=100)
        client = make_client(model, "off")
        completion = client.complete(REQUEST)
        client.close()
    assert completion.text == "x" * 100 and completion.truncated


# 5. and 6. The response cache -------------------------------------------------------

def full_cache(path: Path) -> ResponseCache:
    """A real cache on which SQLite itself answers "database or disk is full" to any
    write that needs a new page (its page budget is what it holds now)."""
    cache = ResponseCache(path)
    pages = cache._db.execute("PRAGMA page_count").fetchone()[0]
    cache._db.execute(f"PRAGMA max_page_count={pages}")
    return cache


def test_calls_are_all_counted_when_the_cache_cannot_write(tmp_path, caplog):
    with openai_server.openai_stub() as stub:
        model = spec("openai", stub.url)
        cache = full_cache(tmp_path / "responses.sqlite")
        inner = make_client(model, "off")
        client = CachedClient(inner, model.identity(), cache, "on")
        with pytest.raises(sqlite3.OperationalError, match="full"):  # the fault is real
            cache.put("probe" * 400, inner.complete(REQUEST))
            cache.flush()  # puts are written behind
        report = run_cell(cell_config(model, episodes=4, max_steps=5), tmp_path / "out",
                          client=client)
        made = len(stub.requests) - 1
        client.close()
    episodes, _ = read_jsonl(tmp_path / "out" / "episodes.jsonl")
    assert report.failed == 0
    assert sum(e["llm_calls"] for e in episodes) == made == 20
    assert sum("cannot be written (disk full)" in r.message for r in caplog.records) == 1


def run_openai_cell(stub: StubServer, tmp_path: Path, *extra: str, out: str = "out"):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({
        "models": {"gpt": {"backend": "openai", "model": "gpt-test",
                           "base_url": f"{stub.url}/v1", "max_retries": 0}},
        "agents": {"naive": {}}, "envs": {"babyai": {"tasks": ["goto"]}},
        "grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["babyai"]}}))
    return run_cli("run", "--params", str(params), "--env", "babyai/goto", "--model", "gpt",
                   "--episodes", "2", "--max-steps", "3", "--out", str(tmp_path / out),
                   *extra, check=False, env={"BALROG_WORKER_CACHE": str(tmp_path / "cache")})


def test_a_cache_file_that_is_not_a_database_stops_the_run_before_any_work(tmp_path):
    damaged = tmp_path / "cache" / "responses.sqlite"
    damaged.parent.mkdir()
    damaged.write_bytes(os.urandom(64 * 1024))
    with openai_server.openai_stub() as stub:
        first = run_openai_cell(stub, tmp_path)
        again = run_openai_cell(stub, tmp_path)
        assert stub.requests == []
        (line,) = first.stderr.strip().splitlines()
        assert first.returncode == again.returncode == 1
        assert str(damaged) in line and "move it aside" in line and "--cache off" in line
        assert not (tmp_path / "out").exists()
        refreshed = run_openai_cell(stub, tmp_path, "--cache", "refresh")
    assert refreshed.returncode == 0, refreshed.stderr
    assert list(damaged.parent.glob("responses.sqlite.damaged-*"))


def test_a_cache_damaged_inside_costs_no_episode(tmp_path):
    cache = tmp_path / "cache" / "responses.sqlite"
    cache.parent.mkdir()
    filled = ResponseCache(cache)  # a cache of many pages, from earlier runs
    for index in range(3000):
        filled.put(f"{index:064x}", Completion(text="go forward " * 10))
    filled.close()  # the log checkpointed into the file
    data = bytearray(cache.read_bytes())
    garbled = len(data) // 4  # the last three quarters of the pages: garbage
    data[garbled:] = os.urandom(len(data) - garbled)
    cache.write_bytes(bytes(data))
    with openai_server.openai_stub() as stub:
        result = run_openai_cell(stub, tmp_path, out="second")
    assert result.returncode == 0, result.stderr
    episodes, _ = read_jsonl(tmp_path / "second" / "episodes.jsonl")
    assert len(episodes) == 2 and not any(e["failed"] for e in episodes)
    assert "is damaged" in result.stderr and "goes on without it" in result.stderr


# 7. A full disk ----------------------------------------------------------------------

def test_a_full_disk_writing_config_json_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.partial").symlink_to("/dev/full")  # the kernel's ENOSPC
    result = run_cli("run", "--env", "babyai/goto", "--model", "random", "--out", str(out),
                     "--params", str(Path(__file__).parent.parent / "params.yaml"),
                     check=False)
    (line,) = result.stderr.strip().splitlines()
    assert result.returncode == 1
    assert line == (f"balrog-worker: error: {out / 'config.json'}: no space left on the "
                    "device; finished episodes are kept (free some space and rerun to go on)")


def test_a_full_disk_at_commit_and_at_the_rewrite_keeps_every_record(tmp_path, monkeypatch,
                                                                      capsys):
    args = ["run", "--env", "babyai/goto", "--model", "random", "--episodes", "4",
            "--max-steps", "5", "--parallel", "1",
            "--params", str(Path(__file__).parent.parent / "params.yaml")]
    assert cli.main([*args, "--out", str(tmp_path / "whole")]) == 0
    fsyncs = {"left": 5}  # the disk fills during the third episode's commit

    def fsync(fd):
        fsyncs["left"] -= 1
        if fsyncs["left"] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", fsync)
    capsys.readouterr()
    assert cli.main([*args, "--out", str(tmp_path / "cut")]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("balrog-worker: error: ") and "no space left" in err
    assert "Traceback" not in err
    with open(tmp_path / "cut" / "steps.jsonl", "a") as torn:
        torn.write('{"torn": ')  # a line cut short: the rerun must rewrite the file
    assert cli.main([*args, "--out", str(tmp_path / "cut")]) == 1  # the rewrite too
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "steps.jsonl" in err or "episodes.jsonl" in err
    monkeypatch.undo()
    assert cli.main([*args, "--out", str(tmp_path / "cut")]) == 0  # space again
    for name in ("episodes.jsonl", "steps.jsonl"):
        whole, _ = read_jsonl(tmp_path / "whole" / name)
        cut, _ = read_jsonl(tmp_path / "cut" / name)
        strip = ("duration_s", "latency_s")
        key = lambda r: (r["episode_index"], r.get("step", -1))  # noqa: E731
        assert [{k: v for k, v in r.items() if k not in strip} for r in sorted(cut, key=key)] \
            == [{k: v for k, v in r.items() if k not in strip} for r in sorted(whole, key=key)]


# 8. serve and SIGTERM ----------------------------------------------------------------

def test_serve_answers_a_line_that_is_not_utf8_and_goes_on():
    exe = BIN / "balrog-worker"
    result = subprocess.run([str(exe), "serve"], input=b'{"cmd": "ping"}\n\xff\xfe\x80 x\n'
                            b'{"cmd": "ping"}\n', capture_output=True, timeout=120,
                            env={**os.environ, "PYTHONIOENCODING": "utf-8", "LC_ALL": "C"})
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 0
    assert [a["ok"] for a in answers] == [True, False, True]
    assert "not UTF-8" in answers[1]["error"]


def test_sigterm_to_run_says_what_is_kept(tmp_path):
    exe = BIN / "balrog-worker"
    out = tmp_path / "out"
    process = subprocess.Popen(
        [str(exe), "run", "--env", "crafter/default", "--model", "random", "--episodes", "50",
         "--max-steps", "200", "--parallel", "1", "--out", str(out),
         "--params", str(Path(__file__).parent.parent / "params.yaml")],
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        episodes = out / "episodes.jsonl"
        if episodes.exists() and episodes.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 143
    assert "terminated (SIGTERM); finished episodes are kept" in err
    recorded, torn = read_jsonl(out / "episodes.jsonl")
    assert recorded and torn == 0


# 9. Params that `dvc repro` cannot render ---------------------------------------------

def test_validate_flags_a_params_file_dvc_cannot_render(tmp_path):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    params = {k: v for k, v in SMALL.items() if k != "paths"}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("validate", str(tmp_path / "params.yaml"), check=False)
    assert result.returncode == 2
    assert "no paths.results or paths.reports" in result.stderr and "dvc repro" in result.stderr
    (tmp_path / "other.yaml").write_text(yaml.safe_dump(params))  # not what DVC reads
    run_cli("validate", str(tmp_path / "other.yaml"))
