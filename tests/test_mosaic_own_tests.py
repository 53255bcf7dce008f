"""MOSAIC's own worker tests, run against this project's worker: those that test the
worker's behaviour through its command line and its protocol (tests/mosaic_worker_swap.py
hands each of them to this worker as MOSAIC's GUI would).

Left out, each for the reason given in NOT_OURS: tests of MOSAIC's own parser, config
class and prompt table (they import MOSAIC's code and test nothing of a worker), and tests
that assert MOSAIC's runtime objects were called (they mock MOSAIC's internals).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mosaic_gui
from tests.stubs import StubServer, openai_server

ROOT = Path(__file__).resolve().parents[1]
SELECTED = ("test_cli.py::TestMainFunction", "test_runtime.py::TestInteractiveRuntimeProtocol",
            "test_runtime.py::TestMultiAgentCommands")
NOT_OURS = {
    "test_cli.py::TestMainFunction::test_main_success":
        "asserts that MOSAIC's BarlogWorkerRuntime mock was run",
    "test_cli.py::TestMainFunction::test_main_runtime_error":
        "injects a failure into MOSAIC's runtime object",
    "test_runtime.py::TestMultiAgentCommands::test_game_instruction_prompts":
        "tests MOSAIC's own prompt table (a private method of its runtime)",
}


def usage_100_in_5_out(request_json: dict, text: str, path: str) -> dict:
    """A completion reporting the usage MOSAIC's test gives its mocked agent."""
    body = openai_server.ok_body(request_json, text, path)
    body["usage"] = {"prompt_tokens": 100, "completion_tokens": 5, "total_tokens": 105}
    return body


@pytest.mark.skipif(mosaic_gui.mosaic_source() is None,
                    reason="MOSAIC's source is absent (set MOSAIC_SOURCE to a checkout of it)")
def test_mosaics_worker_tests_pass_against_this_worker(tmp_path):
    pytest.importorskip("omegaconf", reason="MOSAIC's runtime tests need omegaconf")
    tests = tmp_path / "balrog_worker_tests"
    shutil.copytree(mosaic_gui.mosaic_source() / "3rd_party" / "workers" / "balrog_worker",
                    tests, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    deselect = [arg for test in NOT_OURS for arg in ("--deselect", f"tests/{test}")]
    with StubServer(usage_100_in_5_out, openai_server.error_body, answer="e2e4") as stub:
        env = {**{k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")},
               "PYTHONPATH": os.pathsep.join([str(tests), str(ROOT / "tests")]),
               "MOSAIC_TEST_BASE_URL": f"{stub.url}/v1",
               "MOSAIC_TEST_WORKDIR": str(tmp_path),
               "BALROG_WORKER_CACHE": str(tmp_path / "cache")}
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "mosaic_worker_swap", "-c",
             str(tmp_path / "pytest.ini"), "--rootdir", str(tests), "-p", "no:cacheprovider",
             "-q", "-rA", *[f"tests/{name}" for name in SELECTED], *deselect],
            cwd=tests, env=env, capture_output=True, text=True, timeout=600)
    report = result.stdout
    assert result.returncode == 0, report[-6000:]
    passed = [line for line in report.splitlines() if line.startswith("PASSED")]
    assert len(passed) == 11, report[-6000:]  # 2 + 6 + 3: none skipped
