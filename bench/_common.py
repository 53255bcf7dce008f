"""What every benchmark prints: a header naming the machine, its load and the versions
measured, and each figure against its target."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ("Snakefile", "workflow", "profiles")  # profiles/default: the workflow profile
# Packages whose speed the benchmarks measure, beside the ones a script names itself.
PACKAGES = ("balrog-worker", "numpy", "gymnasium", "minigrid")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: timings on a busy machine are not comparable."""
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def versions(packages: tuple[str, ...] = ()) -> str:
    found = []
    for name in (*PACKAGES, *packages):
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def header(title: str, packages: tuple[str, ...] = ()) -> None:
    """Print the machine, its cores and load, Python and the versions of ``packages``."""
    cpu = platform.processor() or platform.machine()
    print(f"# {title}")
    print(f"# machine: {platform.machine()} ({cpu}), {os.cpu_count()} cores, "
          f"load average {load_average()}")
    print(f"# python {platform.python_version()}; {versions(packages)}")


def verdict(label: str, value: float, target: float, *, at_least: bool = True,
            unit: str = "") -> str:
    """``label: value vs target: ratio, met`` (or MISSED); the ratio is value / target, so
    above 1 is good for an ``at_least`` target and below 1 for an upper bound."""
    met = value >= target if at_least else value <= target
    bound = ">=" if at_least else "<="
    return (f"{label}: {value:.3g}{unit} vs target {bound} {target:g}{unit}: "
            f"{value / target:.2f} of target, {'met' if met else 'MISSED'}")


def copy_workflow(target: Path, from_worktree: bool = False) -> None:
    """The workflow files into ``target``, from git HEAD (not half-edited files of the
    working tree) unless ``from_worktree``: a run there never touches the repository."""
    present = [name for name in WORKFLOW if (ROOT / name).exists()]
    if from_worktree:
        for name in present:
            if (ROOT / name).is_dir():
                shutil.copytree(ROOT / name, target / name)
            else:
                shutil.copy(ROOT / name, target / name)
        return
    archive = subprocess.run(["git", "archive", "HEAD", *present], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
