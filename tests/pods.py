"""Pods on this machine, for Snakemake's generic cluster executor: each job runs in a
fresh, empty directory that shares nothing with the workflow's (as a Kubernetes pod
would), so every file it reads or writes goes through the storage provider.

    python tests/pods.py submit JOBSCRIPT   # prints the job's id
    python tests/pods.py status ID          # running, success or failed

``POD_ROOT`` (environment) is the directory holding the pods and their exit codes. A pod
keeps its directory after the job, for the tests to look into.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path


def root() -> Path:
    return Path(os.environ["POD_ROOT"])


def submit(jobscript: str) -> None:
    job = uuid.uuid4().hex[:12]
    pod = Path(tempfile.mkdtemp(prefix=f"pod-{job}-", dir=root()))
    shutil.copy(jobscript, pod / "job.sh")
    # The job outlives this command (the executor waits for the id, not the job).
    subprocess.Popen([sys.executable, __file__, "run", str(pod), job], cwd=pod,
                     start_new_session=True, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    print(job)


def run(pod: str, job: str) -> None:
    with open(Path(pod) / "job.log", "wb") as log:
        code = subprocess.call(["bash", "job.sh"], cwd=pod, stdout=log,
                               stderr=subprocess.STDOUT)
    (root() / f"{job}.exit").write_text(str(code))


def status(job: str) -> None:
    done = root() / f"{job}.exit"
    if not done.exists():
        print("running")
    else:
        print("success" if done.read_text().strip() == "0" else "failed")


if __name__ == "__main__":
    command, argument, *rest = sys.argv[1:]
    {"submit": lambda: submit(argument), "status": lambda: status(argument),
     "run": lambda: run(argument, *rest)}[command]()
