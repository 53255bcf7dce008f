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


_PSS_SAMPLER = r"""
import os, sys, time
root, skip = int(sys.argv[1]), {int(p) for p in sys.argv[2:]}
def tree():
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        for child, parent in parents.items():
            if parent == pid and child not in found and child not in skip:
                found.add(child)
                frontier.append(child)
    return found
def pss(pid):
    try:
        for line in open(f"/proc/{pid}/smaps_rollup"):
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
peak = 0
while sys.stdin.readable():
    peak = max(peak, sum(pss(pid) for pid in tree() if pid != os.getpid()))
    print(peak, flush=True)
    time.sleep(1.0)
"""


class PeakMemory:
    """The peak of the summed PSS of this process and its descendants (but ``skip``: a
    server the benchmark runs beside), sampled every second by a separate process, so
    that the measured process runs no extra thread (a cell forks its workers only
    from a single-threaded process). Not more often: the kernel walks each process's
    page tables to answer ``smaps_rollup``, about 13 ms of CPU a sample for a 256-episode
    cell, which sampled four times a second took 5% of a core from the cell measured.
    A cell's memory grows to a plateau over seconds, which a sample a second sees."""

    def __init__(self, skip: tuple[int, ...] = ()):
        self._skip = skip
        self.peak_bytes = 0

    def __enter__(self) -> PeakMemory:
        import sys

        self._sampler = subprocess.Popen(
            [sys.executable, "-c", _PSS_SAMPLER, str(os.getpid()),
             *map(str, self._skip)], stdout=subprocess.PIPE, text=True)
        return self

    def __exit__(self, *exc) -> None:
        self._sampler.terminate()
        lines = self._sampler.communicate()[0].split()
        self.peak_bytes = int(lines[-1]) if lines else 0
