"""API keys are used but written nowhere.

Distinctive fake keys are set for every variable the package reads, and the commands a
user runs are run for real: API cells against stub servers of each provider (answering,
failing with 401, failing under random faults), a MOSAIC worker config streaming
records to stdout, the `serve` protocol, validate, aggregate, figures, report, and a
Snakemake pipeline. Every error body the stubs send echoes the key the request carried,
as some servers do. Then every file written (results, reports, logs, Snakemake's own
log, the response cache) and every command's stdout and stderr are searched for each
key, for any 16-character piece of it, and for its base64 forms. The stubs must have
received the keys, or the test would prove nothing.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from balrog_worker.secrets import SECRET_VARIABLES
from tests.stubs import FaultSchedule, StubServer, anthropic_server, gemini_server, openai_server

from .test_workflow import make_project

BIN = Path(sys.executable).parent
# Every variable the package reads a key from, and one a model names (api_key_env).
KEYS = {name: f"{name.lower()}-{secrets.token_hex(20)}"
        for name in (*SECRET_VARIABLES, "TEAM_PROXY_TOKEN", "CLAUDE_PROXY_KEY")}
WINDOW = 16  # any piece of a key this long counts as a leak


def echoing(module, key: str):
    """``module``'s error bodies, each quoting ``key`` as a server may do on a 401."""
    return lambda status, message: module.error_body(
        status, f"{message}; incorrect API key provided: {key}")


def leaks(data: bytes) -> list[str]:
    """The keys (or pieces, or base64 forms of them) found in ``data``."""
    found = []
    for name, key in KEYS.items():
        raw = key.encode()
        pieces = [raw[i:i + WINDOW] for i in range(len(raw) - WINDOW + 1)]
        for pad in range(3):  # the three alignments of the key in a base64 stream
            encoded = base64.b64encode(b"\0" * pad + raw)[4 if pad else 0:-4]
            pieces += [encoded, encoded.replace(b"+", b"-").replace(b"/", b"_")]
        if any(piece in data for piece in pieces):
            found.append(name)
    return found


def sent_keys(stub: StubServer) -> set[str]:
    """The keys the stub received, from whichever header the SDK uses."""
    got = set()
    for request in stub.requests:
        headers = {name.lower(): value for name, value in request["headers"].items()}
        for header in ("authorization", "x-api-key", "x-goog-api-key"):
            value = headers.get(header, "").removeprefix("Bearer ")
            got |= {name for name, key in KEYS.items() if value == key}
    return got


class Commands:
    """Runs commands in ``root`` with the keys set; keeps every output."""

    def __init__(self, root: Path):
        self.root = root
        self.env = {**os.environ, **KEYS, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                    "BALROG_WORKER_CACHE": str(root / "cache")}
        self.outputs: list[tuple[str, str]] = []

    def __call__(self, *args: str, cwd: Path | None = None, stdin: str | None = None,
                 ok: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        result = subprocess.run(args, cwd=cwd or self.root, env=self.env, input=stdin,
                                capture_output=True, text=True, timeout=600)
        self.outputs.append((" ".join(args), result.stdout + result.stderr))
        assert result.returncode in ok, f"{' '.join(args)}: {result.returncode}\n" \
                                        f"{result.stderr[-3000:]}"
        return result


def files_under(root: Path):
    return [path for path in root.rglob("*") if path.is_file() and ".git" not in path.parts]


@pytest.mark.slow
def test_no_command_writes_or_prints_a_key(tmp_path, repo):
    run = Commands(tmp_path)
    key = KEYS
    gpt = openai_server.openai_stub(
        answer="go forward", retry_after="0", errors=echoing(openai_server, key["OPENAI_API_KEY"]),
        faults=FaultSchedule(0.3, 1, ("429", "500", "drop", "malformed", "empty", "401")))
    claude = StubServer(anthropic_server.ok_body,
                        echoing(anthropic_server, key["ANTHROPIC_API_KEY"]),
                        answer="go forward", script=["429", "401"])
    gemini = gemini_server.server(answer="go forward", script=["429", "401"])
    gemini.error_body = echoing(gemini_server, key["GOOGLE_API_KEY"])  # GOOGLE_ comes first
    proxy = openai_server.openai_stub(errors=echoing(openai_server, key["TEAM_PROXY_TOKEN"]),
                                      script=["401"] * 100)
    claude_proxy = StubServer(anthropic_server.ok_body,
                              echoing(anthropic_server, key["CLAUDE_PROXY_KEY"]),
                              script=["401"] * 100)
    vllm = openai_server.openai_stub(errors=echoing(openai_server, key["VLLM_API_KEY"]),
                                     answer="turn left", script=["429", "401"])
    with gpt, claude, gemini, proxy, claude_proxy, vllm:
        models = {
            "gpt": {"backend": "openai", "model": "gpt-test", "base_url": f"{gpt.url}/v1",
                    "max_retries": 1, "timeout_s": 5},
            "claude": {"backend": "anthropic", "model": "claude-test", "base_url": claude.url,
                       "max_retries": 1, "timeout_s": 5},
            "gemini": {"backend": "gemini", "model": "gemini-test", "base_url": gemini.url,
                       "max_retries": 1, "timeout_s": 5},
            "proxy": {"backend": "openai_compatible", "model": "m", "timeout_s": 5,
                      "base_url": f"{proxy.url}/v1", "api_key_env": "TEAM_PROXY_TOKEN"},
            "claude-proxy": {"backend": "anthropic", "model": "claude-test", "timeout_s": 5,
                             "base_url": claude_proxy.url, "api_key_env": "CLAUDE_PROXY_KEY"},
            "vllm": {"backend": "vllm", "model": "m", "base_url": f"{vllm.url}/v1",
                     "api_key_env": "VLLM_API_KEY", "max_retries": 1, "timeout_s": 5},
        }
        params = {"seed": 1, "models": models, "agents": {"naive": {}},
                  "envs": {"babyai": {"tasks": ["goto"], "episodes": 2, "max_steps": 3}},
                  "grid": {"models": list(models), "agents": ["naive"], "envs": ["babyai"]},
                  "prices": {"gpt-test": {"input": 1.0, "output": 2.0}}}
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        run("balrog-worker", "validate", "params.yaml", "--cells")
        for name in models:  # some episodes fail (401, faults): exit 3
            run("balrog-worker", "run", "--env", "babyai/goto", "--model", name,
                "--emit-jsonl", "--out", f"results/runs/{name}", ok=(0, 3))
        mosaic = {"worker": "balrog", "model": "gpt-test", "backend": "openai",
                  "environment": "babyai/goto", "num_episodes": 2, "max_steps": 3,
                  "base_url": f"{gpt.url}/v1", "seed": 5}
        (tmp_path / "mosaic.json").write_text(json.dumps(mosaic))
        run("balrog-worker", "run", "--config", "mosaic.json", "--emit-jsonl", "--out",
            "results/runs/mosaic", ok=(0, 3))
        session = [{"cmd": "init", "config": {**mosaic, "seed": 6}}, {"cmd": "reset"},
                   {"cmd": "select_action"}, {"cmd": "select_action"}, {"cmd": "stop"}]
        served = run("balrog-worker", "serve",
                     stdin="".join(json.dumps(c) + "\n" for c in session))
        assert len(served.stdout.splitlines()) == len(session)
        run("balrog-worker", "aggregate", "results/runs", "--out", "reports")
        run("balrog-worker", "figures", "reports/tables", "--out", "reports/figures")
        run("balrog-worker", "report", "reports")

        # the pipeline's jobs, with an API model whose server rate-limits a third of the
        # calls (aggregate, figures and report ran above)
        gpt.faults = FaultSchedule(0.3, 2, ("429",))
        project = make_project(repo, tmp_path / "project", {
            "seed": 2, "paths": {"results": "results/runs", "reports": "reports"},
            "models": {"gpt": {**models["gpt"], "max_retries": 8}}, "agents": {"naive": {}},
            "envs": {"babyai": {"tasks": ["goto", "pickup"], "episodes": 2, "max_steps": 3}},
            "grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["babyai"]}})
        run("snakemake", "--cores", "2", "evaluate_all", cwd=project)

    # The keys were used: each server got the key of its model's variable.
    assert sent_keys(gpt) == {"OPENAI_API_KEY"}
    assert sent_keys(claude) == {"ANTHROPIC_API_KEY"}
    assert sent_keys(gemini) == {"GOOGLE_API_KEY"}
    assert sent_keys(proxy) == {"TEAM_PROXY_TOKEN"}
    assert sent_keys(claude_proxy) == {"CLAUDE_PROXY_KEY"}
    assert sent_keys(vllm) == {"VLLM_API_KEY"}
    # The runs did what the test claims: some episodes failed with the echoed errors.
    errors = [json.loads(line).get("error") or ""
              for path in (tmp_path / "results" / "runs").glob("*/episodes.jsonl")
              for line in path.read_text().splitlines()]
    scrubbed = [e for e in errors if "incorrect API key provided: ***" in e]
    assert len(scrubbed) >= 2 + 2 + 3, errors  # the proxies' episodes and more
    assert len(list((project / "results" / "runs").glob("*/summary.json"))) == 2
    assert list((project / ".snakemake" / "log").glob("*.log"))
    assert list((project / "logs" / "evaluate").glob("*.log"))

    written = {path: leaks(path.read_bytes()) for path in files_under(tmp_path)}
    assert len(written) > 50  # results, reports, logs, the cache, Snakemake's files
    assert {str(path): found for path, found in written.items() if found} == {}
    printed = {command: leaks(output.encode()) for command, output in run.outputs}
    assert {command: found for command, found in printed.items() if found} == {}
