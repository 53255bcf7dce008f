"""A vLLM server started by the job itself (`serve`): its command line, the cell played
against it, the server stopped afterwards, a server that fails to start, the GPUs the
job asks the scheduler for. There is no GPU here, so tests/stubs/vllm_standin.py stands
in for the `vllm` executable (it speaks the same OpenAI format once "loaded")."""

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from balrog_worker.config import ConfigError, load_params
from balrog_worker.store import read_jsonl
from tests.test_cluster_profiles import planned_jobs
from tests.test_workflow import make_project, sh

from .conftest import run_cli

STANDIN = [sys.executable, str(Path(__file__).parent / "stubs" / "vllm_standin.py")]


def params(tmp_path: Path, **serve) -> Path:
    spec = {"models": {"llama": {"backend": "vllm", "model": "meta-llama/Llama-3.1-8B",
                                 "serve": {"command": STANDIN, **serve}}},
            "agents": {"naive": {}},
            "envs": {"babyai": {"tasks": ["goto"]}},
            "grid": {"models": ["llama"], "agents": ["naive"], "envs": ["babyai"]}}
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def run(tmp_path: Path, env: dict, check=True):
    return run_cli("run", "--params", str(params(tmp_path, gpus=2, args=["--max-model-len",
                                                                          "4096"])),
                   "--env", "babyai/goto", "--model", "llama", "--episodes", "2",
                   "--max-steps", "3", "--out", str(tmp_path / "out"), check=check, env=env,
                   cwd=tmp_path)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_job_starts_vllm_plays_the_cell_and_stops_it(tmp_path):
    log = tmp_path / "standin.jsonl"
    env = {"STANDIN_LOG": str(log), "STANDIN_DELAY_S": "1.5",
           "BALROG_WORKER_CACHE": str(tmp_path / "cache")}
    run(tmp_path, env)
    (started,) = [json.loads(line) for line in log.read_text().splitlines()]
    argv = started["argv"]
    assert argv[:2] == ["serve", "meta-llama/Llama-3.1-8B"]
    value = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag.startswith("--")}
    assert value["--host"] == "127.0.0.1" and value["--tensor-parallel-size"] == "2"
    assert "--enable-prefix-caching" in argv and value["--max-model-len"] == "4096"
    assert not alive(started["pid"])  # stopped with the cell

    episodes, _ = read_jsonl(tmp_path / "out" / "episodes.jsonl")
    steps, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    assert len(episodes) == 2 and not any(e["failed"] for e in episodes)
    assert len(steps) == 6 and all(s["valid"] and s["action"] == "go forward" for s in steps)
    assert all(s["input_tokens"] > 0 for s in steps)  # usage came from the server
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["model"]["serve"]["gpus"] == 2 and summary["model"]["base_url"] is None


def test_a_server_that_fails_to_start_is_one_line_and_records_nothing(tmp_path):
    env = {"STANDIN_LOG": str(tmp_path / "standin.jsonl"), "STANDIN_EXIT": "7",
           "BALROG_WORKER_CACHE": str(tmp_path / "cache")}
    result = run(tmp_path, env, check=False)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[-1] == ("balrog-worker: error: model 'llama': vllm serve exited with code 7 "
                         "before answering (its output is in this log)")
    assert "standin: CUDA error: no GPU found" in lines  # the server's own words, above
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out" / "episodes.jsonl").exists()


@pytest.mark.parametrize(("model", "message"), [
    ({"backend": "openai", "model": "gpt-4o", "serve": {}}, "models.m.serve: only the vllm"),
    ({"backend": "vllm", "model": "x", "base_url": "http://h:8000/v1", "serve": {"gpus": 1}},
     "give either base_url"),
    ({"backend": "vllm", "model": "x", "serve": {"gpus": 0}}, "gpus"),
    ({"backend": "vllm", "model": "x", "serve": {"gpu": 1}}, "gpu"),
])
def test_bad_serve_settings_are_one_line_errors(tmp_path, model, message):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump({
        "models": {"m": model}, "agents": {"naive": {}},
        "envs": {"babyai": {"tasks": ["goto"]}},
        "grid": {"models": ["m"], "agents": ["naive"], "envs": ["babyai"]}}))
    with pytest.raises(ConfigError, match=message) as error:
        load_params(path)
    assert "\n" not in str(error.value)


def test_a_served_cell_asks_the_scheduler_for_its_gpus(tmp_path, repo):
    grid = yaml.safe_load(params(tmp_path, gpus=4).read_text())
    grid["models"]["shared"] = {"backend": "vllm", "model": "x",
                                "base_url": "http://gpu-node-7:8000/v1"}
    grid["grid"]["models"] = ["llama", "shared"]
    project = make_project(repo, tmp_path / "project", grid)
    result = sh("snakemake", "--profile", "profiles/slurm", "-n", cwd=project)
    plan = planned_jobs(result.stdout + result.stderr)
    assert plan["llama__naive__babyai__goto"]["gpu"] == "4"
    assert "gpu" not in plan["shared__naive__babyai__goto"]  # a running server: no GPU
