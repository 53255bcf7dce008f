"""A whole cell against each provider's wire format: faults survived, usage recorded,
the cache replays a finished cell with no call, and the key is written nowhere."""

from pathlib import Path

import pytest
import yaml

from tests.stubs import StubServer, anthropic_server, gemini_server, openai_server

from .conftest import run_cli

SECRET = "sk-live-SECRET-0123456789abcdef"
PROVIDERS = {
    # backend: (stub module, key variable, base_url suffix)
    "openai": (openai_server, "OPENAI_API_KEY", "/v1"),
    "anthropic": (anthropic_server, "ANTHROPIC_API_KEY", ""),
    "gemini": (gemini_server, "GEMINI_API_KEY", ""),
}


def files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file() and p.suffix != ".sqlite"]


@pytest.mark.parametrize("backend", list(PROVIDERS))
def test_a_cell_against_a_provider_stub(backend, tmp_path):
    module, variable, suffix = PROVIDERS[backend]
    env = {variable: SECRET, "BALROG_WORKER_CACHE": str(tmp_path / "cache")}
    with StubServer(module.ok_body, module.error_body, answer="go forward",
                    script=["429", "500", "drop"]) as stub:
        params = {
            "models": {"m": {"backend": backend, "model": "test-model",
                             "base_url": stub.url + suffix, "max_retries": 4,
                             "timeout_s": 5}},
            "agents": {"naive": {}},
            "envs": {"babyai": {"tasks": ["goto"]}},
            "grid": {"models": ["m"], "agents": ["naive"], "envs": ["babyai"]},
            "prices": {"test-model": {"input": 1.0, "output": 2.0}},
        }
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        args = ["run", "--params", str(tmp_path / "params.yaml"), "--env", "babyai/goto",
                "--model", "m", "--episodes", "2", "--max-steps", "3"]
        first = run_cli(*args, "--out", str(tmp_path / "a"), env=env, cwd=tmp_path)
        calls_after_first = len(stub.requests)
        second = run_cli(*args, "--out", str(tmp_path / "b"), env=env, cwd=tmp_path)
        assert len(stub.requests) == calls_after_first  # all served from the cache

    from balrog_worker.store import read_jsonl

    episodes, _ = read_jsonl(tmp_path / "a" / "episodes.jsonl")
    assert len(episodes) == 2 and not any(e["failed"] for e in episodes)
    assert sum(e["retries"] for e in episodes) == 3  # 429, 500 and the dropped connection
    assert all(e["input_tokens"] > 0 and e["output_tokens"] > 0 for e in episodes)
    assert all(e["cost_usd"] > 0 for e in episodes)
    assert calls_after_first == 6 + 3  # 2 episodes x 3 steps, plus the 3 failed attempts
    replay, _ = read_jsonl(tmp_path / "b" / "episodes.jsonl")
    key = lambda e: (e["episode_index"], e["seed"], e["num_steps"], e["input_tokens"])  # noqa: E731
    assert sorted(map(key, replay)) == sorted(map(key, episodes))
    for path in files_under(tmp_path):
        assert SECRET not in path.read_text(errors="replace"), path
    for output in (first.stdout, first.stderr, second.stdout, second.stderr):
        assert SECRET not in output


def test_a_missing_key_fails_before_any_episode_naming_the_variable(tmp_path):
    params = {"models": {"gpt": {"backend": "openai", "model": "gpt-4o"}},
              "agents": {"naive": {}}, "envs": {"babyai": {"tasks": ["goto"]}},
              "grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["babyai"]}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = run_cli("run", "--params", str(tmp_path / "params.yaml"), "--env", "babyai/goto",
                     "--model", "gpt", "--out", str(tmp_path / "out"), cwd=tmp_path,
                     env={"OPENAI_API_KEY": ""}, check=False)
    assert result.returncode == 2
    assert "set OPENAI_API_KEY" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()
