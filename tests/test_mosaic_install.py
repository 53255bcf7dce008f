"""The worker installs where MOSAIC runs it (MOSAIC's GUI starts it with its own
interpreter): pip's resolver accepts this project together with MOSAIC's requirement
files, and the pins relaxed for it hold at both ends of their ranges.

Both reach the package index (as CI's installs do).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import mosaic_gui

ROOT = Path(__file__).resolve().parents[1]
# MOSAIC's files for a BALROG worker: its GUI's base, the worker's, and the BALROG games'.
MOSAIC_REQUIREMENTS = ("base.txt", "balrog_worker.txt", "crafter.txt", "textworld.txt",
                       "minigrid.txt")
# The other end of each pin relaxed for MOSAIC (the newest allowed is what CI installs),
# and the tests that depend on it.
LOWER_ENDS = {
    "minigrid==2.5.0": ["tests/test_golden_babyai.py", "tests/test_grid_text.py"],
    "google-genai==2.8.0": ["tests/test_anthropic_gemini_clients.py",
                            "tests/test_vision_requests.py", "tests/test_reliability.py",
                            "-k", "gemini or Gemini"],
}


def index_lines(path: Path) -> tuple[list[str], list[str]]:
    """(requirements on the package index, lines left out) of a requirements file; its
    ``-r`` includes are read by the caller, and what is not on the index (a local path,
    an editable install, a git URL) is left out."""
    kept, left = [], []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if not line or line.startswith(("#", "-r")):
            continue
        (left if line.startswith(("-e", ".", "/")) or "git+" in line else kept).append(line)
    return kept, left


@pytest.mark.skipif(mosaic_gui.mosaic_source() is None,
                    reason="MOSAIC's source is absent (set MOSAIC_SOURCE to a checkout of it)")
def test_pip_accepts_the_worker_in_mosaics_environment(tmp_path):
    folder = mosaic_gui.mosaic_source() / "requirements"
    requirements, left_out = [], []
    for name in MOSAIC_REQUIREMENTS:
        kept, left = index_lines(folder / name)
        requirements += kept
        left_out += left
    (tmp_path / "mosaic.txt").write_text("\n".join(requirements) + "\n")
    report = tmp_path / "report.json"
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
         "--report", str(report), "-r", str(tmp_path / "mosaic.txt"), f"{ROOT}[api]"],
        capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stderr[-3000:], left_out)
    chosen = {item["metadata"]["name"].lower(): item["metadata"]["version"]
              for item in json.loads(report.read_text())["install"]}
    assert "balrog-worker" in chosen
    assert chosen["pydantic"] == "2.12.0" and chosen["minigrid"].startswith("2.")
    print("resolved with MOSAIC's pins:", {k: chosen[k] for k in (
        "minigrid", "google-genai", "openai", "anthropic", "numpy", "pydantic")},
        "left out (not on the index):", left_out)


@pytest.mark.parametrize("requirement", sorted(LOWER_ENDS))
def test_the_lower_end_of_a_relaxed_pin_passes_its_tests(requirement, tmp_path):
    target = tmp_path / "lower"
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target",
         str(target), requirement], capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stderr[-2000:]
    env = {**os.environ, "PYTHONPATH": str(target)}
    check = subprocess.run(
        [sys.executable, "-c", "import importlib.metadata as m, sys; "
         "print(m.version(sys.argv[1]))", requirement.split("==")[0]],
        capture_output=True, text=True, env=env, timeout=120)
    assert check.stdout.strip() == requirement.split("==")[1]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
         *LOWER_ENDS[requirement]], cwd=ROOT, capture_output=True, text=True, env=env,
        timeout=900)
    assert result.returncode == 0, result.stdout[-4000:]
