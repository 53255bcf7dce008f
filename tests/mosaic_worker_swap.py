"""A pytest plugin that runs MOSAIC's own worker tests against this project's worker.

Loaded (``-p mosaic_worker_swap``, tests/ on PYTHONPATH) in a pytest whose
``balrog_worker`` is MOSAIC's (its package first on PYTHONPATH). Only the points where
MOSAIC's tests hand over to the worker change: ``cli.main(argv)`` and the runtimes'
``run()`` start this project's worker as MOSAIC's GUI does (``python -m
balrog_worker.cli``, without MOSAIC's package on the path) with the same arguments, feed
it the test's stdin, and copy its stdout into the test's. Everything a test asserts is then
said by this project's worker. The model is a loopback server (``MOSAIC_TEST_BASE_URL``):
the tests' mocked agent answers, and so does it.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys

# MOSAIC's package (first on PYTHONPATH here), not this project's.
import balrog_worker.cli as mosaic_cli  # isort: skip
import balrog_worker.runtime as mosaic_runtime  # isort: skip

TIMEOUT_S = 300


def _worker(argv: list[str]) -> int:
    """This project's worker on ``argv``, with the test's stdin and stdout."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("OPENROUTER_API_KEY", "sk-mosaic-tests")
    env.setdefault("OPENAI_API_KEY", "sk-mosaic-tests")
    stdin = sys.stdin.getvalue() if isinstance(sys.stdin, io.StringIO) else ""
    base_url = os.environ.get("MOSAIC_TEST_BASE_URL")
    if base_url and "--base-url" not in argv and "--config" not in argv:
        argv = [*argv, "--base-url", base_url]
    done = subprocess.run([sys.executable, "-m", "balrog_worker.cli", *argv], input=stdin,
                          capture_output=True, text=True, env=env, timeout=TIMEOUT_S,
                          cwd=os.environ.get("MOSAIC_TEST_WORKDIR"))
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr[-4000:])
    return done.returncode


def _argv_of(config, interactive: bool) -> list[str]:
    """MOSAIC's command line for one of its worker configs (as its launcher builds it)."""
    argv = ["--run-id", config.run_id, "--env", config.env_name, "--task", config.task,
            "--client", config.client_name, "--model", config.model_id, "--agent-type",
            config.agent_type, "--num-episodes", str(config.num_episodes), "--max-steps",
            str(config.max_steps), "--telemetry-dir", str(config.telemetry_dir)]
    if not config.emit_jsonl:
        argv.append("--no-jsonl")
    return [*argv, "--interactive"] if interactive else argv


def _interactive_run(self) -> None:
    _worker(_argv_of(self.config, interactive=True))


def _batch_run(self) -> None:
    if _worker(_argv_of(self.config, interactive=False)) != 0:
        raise RuntimeError("the worker failed")


mosaic_cli.main = _worker
mosaic_runtime.InteractiveRuntime.run = _interactive_run
mosaic_runtime.BarlogWorkerRuntime.run = _batch_run
