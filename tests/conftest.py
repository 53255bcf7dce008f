import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def run_cli(*args: str, cwd: Path | None = None, check: bool = True, env: dict | None = None,
            timeout: float = 600):
    """Run the installed `balrog-worker` console script as a user would."""
    exe = shutil.which("balrog-worker", path=str(BIN)) or "balrog-worker"
    result = subprocess.run(
        [exe, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and result.returncode != 0:
        raise AssertionError(f"balrog-worker {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stderr}")
    return result
