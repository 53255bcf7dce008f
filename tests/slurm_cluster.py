"""A one-node SLURM cluster on this machine, for the tests: munged, slurmctld and slurmd
from Debian's ``slurm-wlm`` and ``munge`` packages, each with its own key, socket, state,
ports and logs under a fresh directory, bound to 127.0.0.1 and stopped at the end.

    with SlurmCluster.start() as cluster:
        subprocess.run(["sbatch", ...], env=cluster.env)

The cluster is the shape of a small site with accounting off (no slurmdbd): one default
partition, the machine's cores as the node's CPUs. ``SLURM_CONF`` in ``cluster.env`` points
every client command (sbatch, squeue, scancel, scontrol, srun) at it.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from balrog_worker.clients.vllm_server import free_port

SBIN = ("/usr/sbin", "/usr/bin", "/sbin")
DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "scancel", "scontrol", "sinfo", "srun")
NODE_MEMORY_MB = 16384  # declared, not measured (config_overrides): the same on any machine


def missing() -> str | None:
    """Why no cluster can start here (a one-line skip reason), or None."""
    absent = [name for name in DAEMONS if not _find(name)]
    absent += [name for name in CLIENTS if not _find(name)]
    if absent:
        return (f"no SLURM here ({', '.join(absent)} not found): "
                "apt-get install slurm-wlm munge")
    return None


def _find(name: str) -> str | None:
    return shutil.which(name) or shutil.which(name, path=os.pathsep.join(SBIN))


class SlurmCluster:
    def __init__(self, root: Path):
        self.root = root
        self.node = socket.gethostname()
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}

    @classmethod
    def start(cls, cpus: int | None = None) -> SlurmCluster:
        # A short path: munge's socket path must fit a sockaddr_un (108 bytes).
        cluster = cls(Path(tempfile.mkdtemp(prefix="slurm-", dir="/tmp")))
        try:
            cluster._start(cpus or os.cpu_count() or 1)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def __enter__(self) -> SlurmCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _start(self, cpus: int) -> None:
        root = self.root
        for name in ("state", "spool", "log"):
            (root / name).mkdir()
        key = root / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o400)
        user = getpass.getuser()
        self.conf.write_text(f"""\
ClusterName=balrogtest
SlurmctldHost={self.node}(127.0.0.1)
SlurmctldPort={free_port()}
SlurmdPort={free_port()}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={root}/munge.sock
CredType=cred/munge
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
{self._listen_on_loopback()}
ReturnToService=2
MinJobAge=600
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
NodeName={self.node} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={NODE_MEMORY_MB} State=UNKNOWN
PartitionName=main Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        subprocess.run(
            [_find("munged"), "--force", f"--key-file={key}", f"--socket={root}/munge.sock",
             f"--pid-file={root}/munged.pid", f"--log-file={root}/log/munged.log",
             f"--seed-file={root}/munge.seed"], check=True, capture_output=True, timeout=30)
        for daemon in ("slurmctld", "slurmd"):
            subprocess.run([_find(daemon), "-f", str(self.conf)], env=self.env, check=True,
                           capture_output=True, timeout=30)
        self.wait_for_node("idle")

    def _listen_on_loopback(self) -> str:
        """The daemons listen on every interface unless told to bind to the address the
        machine's name resolves to: that, where it is a loopback address (where it is
        not, binding there would lose the 127.0.0.1 the clients use)."""
        try:
            loopback = socket.gethostbyname(self.node).startswith("127.")
        except OSError:
            loopback = False
        return "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny" if loopback else ""

    def wait_for_node(self, state: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        seen = ""
        while time.monotonic() < deadline:
            seen = self.node_state()
            if seen.startswith(state):
                return
            time.sleep(0.5)
        raise RuntimeError(f"node {self.node} is {seen or 'absent'}, not {state}, after "
                           f"{timeout:g} s:\n{self.logs()}")

    def node_state(self) -> str:
        result = subprocess.run([_find("sinfo"), "-h", "-N", "-o", "%T"], env=self.env,
                                capture_output=True, text=True, timeout=30)
        return result.stdout.strip().lower()

    def command(self, name: str, *args: str) -> subprocess.CompletedProcess:
        """A client command against this cluster; raises with its output if it fails."""
        result = subprocess.run([_find(name), *args], env=self.env, capture_output=True,
                                text=True, timeout=60)
        if result.returncode:
            raise RuntimeError(f"{name} {' '.join(args)} exited {result.returncode}: "
                               f"{result.stderr.strip()}")
        return result

    def jobs(self) -> list[dict[str, str]]:
        """Every job the controller still knows (finished ones for MinJobAge)."""
        out = self.command("squeue", "-h", "-t", "all", "-o", "%i|%j|%T|%r").stdout
        keys = ("id", "name", "state", "reason")
        return [dict(zip(keys, line.split("|"), strict=True))
                for line in out.splitlines() if line]

    def logs(self) -> str:
        return "\n".join(f"--- {path.name}\n" + path.read_text(errors="replace")[-2000:]
                         for path in sorted((self.root / "log").glob("*.log")))

    def stop(self) -> None:
        """Stop every daemon (jobs still running die with slurmd's job steps) and remove
        the cluster's directory."""
        for name in ("slurmd", "slurmctld", "munged"):
            pid_file = self.root / f"{name}.pid"
            try:
                pid = int(pid_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            terminate(pid)
        # slurmstepd and the jobs' processes outlive slurmd: every process that has
        # this cluster's SLURM_CONF in its environment is ours to stop.
        for pid in processes_with(f"SLURM_CONF={self.conf}"):
            terminate(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def terminate(pid: int, grace: float = 10) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def processes_with(variable: str) -> list[int]:
    """Processes (other than this one) whose environment holds ``variable`` (NAME=value)."""
    wanted, pids = variable.encode(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if wanted in environ:
            pids.append(int(entry.name))
    return pids
