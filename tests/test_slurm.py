"""The grid on a real SLURM cluster (one node on this machine, Debian's slurm-wlm) through
``profiles/slurm``, unchanged but for how soon the plugin first looks at its jobs: every
job goes through sbatch, the tables equal a local run's, and the faults a cluster brings
(a job cancelled, a job past its time limit, a node that goes down and comes back) cost a
retry that resumes from the recorded episodes."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import BIN, run_cli
from tests.slurm_cluster import SlurmCluster, missing
from tests.stubs.openai_server import openai_stub
from tests.test_workflow import make_project

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(bool(missing()), reason=missing() or "")]

# The plugin's first status check 2 s after a submission, not the profile's 20.
FAST_CHECKS = ("--slurm-init-seconds-before-status-checks", "2")
TABLES = ("leaderboard.csv", "per_env.csv", "per_task.csv", "other_envs.csv")

GRID = {
    "seed": 5,
    "paths": {"results": "results/runs", "reports": "reports"},
    "models": {"random": {"backend": "random"}},
    "agents": {"naive": {}},
    "envs": {"babyai": {"tasks": ["goto", "pickup"], "episodes": 3, "max_steps": 12}},
    "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]},
}


@pytest.fixture(scope="module")
def cluster():
    try:
        started = SlurmCluster.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as error:
        # The packages are here but this machine cannot run the daemons (no root for
        # slurmd, say): the environment's limit, said in one line, not a failure.
        pytest.skip(f"the one-node SLURM cluster did not start here: "
                    f"{str(error).splitlines()[0]}")
    with started as cluster:
        yield cluster


def snakemake(project: Path, *args: str, env: dict | None = None,
              timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=project, capture_output=True, text=True,
        timeout=timeout,
        env={**(env or os.environ), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"})
    if result.returncode:
        raise AssertionError(f"snakemake {' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
    return result


def tables(project: Path) -> dict[str, str]:
    return {name: (project / "reports" / "tables" / name).read_text() for name in TABLES}


def test_the_grid_through_sbatch_gives_the_tables_of_a_local_run(cluster, repo, tmp_path):
    local = make_project(repo, tmp_path / "local", GRID)
    snakemake(local, "--cores", "2")
    on_slurm = make_project(repo, tmp_path / "slurm", GRID)
    started = time.monotonic()
    snakemake(on_slurm, "--profile", "profiles/slurm", *FAST_CHECKS, env=cluster.env)
    wall = time.monotonic() - started

    jobs = cluster.jobs()
    # Every job but the `all` target went through sbatch: two cells, aggregate, figures,
    # the HTML report; none failed.
    assert len(jobs) == 5 and {job["state"] for job in jobs} == {"COMPLETED"}, jobs
    assert tables(on_slurm) == tables(local)
    for cell in ("random__naive__babyai__goto", "random__naive__babyai__pickup"):
        episodes = (on_slurm / "results/runs" / cell / "episodes.jsonl").read_text()
        assert len(episodes.splitlines()) == 3
    print(f"SLURM grid: {len(jobs)} jobs in {wall:.0f} s")


class SlowModel:
    """An OpenAI-compatible stub whose answers take ``delay`` seconds (changed while a
    run goes on), counting the requests of each task."""

    def __init__(self, delay: float):
        self.delay = delay
        self.requests: dict[str, int] = {}
        self._lock = threading.Lock()

    def answer(self, body: dict) -> str:
        prompt = json.dumps(body.get("messages", []))
        task = next((t for t in ("go to", "pick up", "open")
                     if f"Your goal is to {t}" in prompt), "other")
        with self._lock:
            self.requests[task] = self.requests.get(task, 0) + 1
        time.sleep(self.delay)
        return "turn left"  # never finishes a mission: every episode plays all its steps


FAULT_GRID_EPISODES, FAULT_GRID_STEPS = 6, 8
FAST = 0.15  # seconds an answer: a cell takes about 7 s, its faults land mid-way


def stub_grid(url: str, *, seed: int, tasks: list[str], episodes: int, steps: int) -> dict:
    """A BabyAI grid against the stub model at ``url``, for the fault tests."""
    return {
        "seed": seed,
        "paths": {"results": "results/runs", "reports": "reports"},
        # One episode at a time and no response cache: what a retry plays again reaches
        # the server, to be counted.
        "evaluation": {"parallel_episodes": 1, "cache": "off"},
        "models": {"stub": {"backend": "openai_compatible", "model": "stub",
                            "base_url": f"{url}/v1", "max_retries": 0}},
        "agents": {"naive": {}},
        "envs": {"babyai": {"tasks": tasks, "episodes": episodes, "max_steps": steps}},
        "grid": {"models": ["stub"], "agents": ["naive"], "envs": ["babyai"]},
    }


def _fault_grid(url: str) -> dict:
    return stub_grid(url, seed=11, tasks=["goto", "pickup", "open"],
                     episodes=FAULT_GRID_EPISODES, steps=FAULT_GRID_STEPS)


class Saboteur(threading.Thread):
    """Once a cell has recorded two episodes, does its fault to the job playing it."""

    def __init__(self, cluster: SlurmCluster, project: Path, model: SlowModel):
        super().__init__(daemon=True)
        self.cluster, self.project, self.model = cluster, project, model
        self.faults = {"goto": self.cancel, "pickup": self.time_out, "open": self.node_down}
        self.done: dict[str, str] = {}  # task -> the SLURM job it hit
        self.timed_out: str | None = None  # the job left to run out of time
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            if self.timed_out and self._state(self.timed_out) != "RUNNING":
                self.model.delay, self.timed_out = FAST, None  # the retry at full speed
            for task, fault in self.faults.items():
                if task in self.done:
                    continue
                episodes = (self.project / "results/runs" / f"stub__naive__babyai__{task}"
                            / "episodes.jsonl")
                recorded = len(episodes.read_text().splitlines()) if episodes.exists() else 0
                # Mid-cell: two episodes recorded, four to play.
                if 2 <= recorded < 4 and (job := self.running_job(task)):
                    fault(job)
                    self.done[task] = job

    def running_job(self, task: str) -> str | None:
        out = self.cluster.command("squeue", "-h", "-t", "running", "-o", "%i|%k").stdout
        for line in out.splitlines():
            job, _, comment = line.partition("|")
            if comment.endswith(f"babyai__{task}"):
                return job
        return None

    def cancel(self, job: str) -> None:
        self.cluster.command("scancel", job)

    def time_out(self, job: str) -> None:
        # The job's limit drops to one minute (SLURM counts limits in minutes, and checks
        # them every 30 s): it ends as a job that ran for its whole --time. The model
        # slows until then, so that the cell is still running (its 32 steps left take
        # 96 s); the retry plays at full speed.
        self.model.delay, self.timed_out = 3.0, job
        self.cluster.command("scontrol", "update", f"JobId={job}", "TimeLimit=1")

    def node_down(self, job: str) -> None:
        node = self.cluster.node
        self.cluster.command("scontrol", "update", f"NodeName={node}", "State=DOWN",
                             "Reason=test")
        time.sleep(3)
        # Back in service: RESUME where the node is still down (ReturnToService=2 may
        # have returned it already, when its slurmd registered again).
        deadline = time.monotonic() + 60
        while (state := self.cluster.node_state()).startswith(("down", "drain")):
            try:
                self.cluster.command("scontrol", "update", f"NodeName={node}",
                                     "State=RESUME")
            except RuntimeError:  # refused while the node cleans up the killed job
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {node} stays {state}") from None
                time.sleep(1)

    def _state(self, job: str) -> str:
        return next((j["state"] for j in self.cluster.jobs() if j["id"] == job), "")


def test_cancelled_timed_out_and_node_failed_jobs_resume_from_their_episodes(
        cluster, repo, tmp_path):
    model = SlowModel(FAST)
    with openai_stub(answer_fn=model.answer) as stub:
        project = make_project(repo, tmp_path / "faults", _fault_grid(stub.url))
        saboteur = Saboteur(cluster, project, model)
        saboteur.start()
        started = time.monotonic()
        try:
            # One cell at a time: each fault hits the job of its own cell.
            snakemake(project, "--profile", "profiles/slurm", *FAST_CHECKS, "--jobs", "1",
                      "evaluate_all", env=cluster.env)
        finally:
            saboteur.stop.set()
            saboteur.join()
        wall = time.monotonic() - started

    assert set(saboteur.done) == {"goto", "pickup", "open"}, saboteur.done
    states = {job["id"]: job["state"] for job in cluster.jobs()}
    assert states[saboteur.done["goto"]] == "CANCELLED"
    assert states[saboteur.done["pickup"]] == "TIMEOUT"
    assert states[saboteur.done["open"]] == "NODE_FAIL"
    played = FAULT_GRID_EPISODES * FAULT_GRID_STEPS
    replayed = {}
    for task, mission in (("goto", "go to"), ("pickup", "pick up"), ("open", "open")):
        cell = project / "results/runs" / f"stub__naive__babyai__{task}"
        indices = sorted(json.loads(line)["episode_index"]
                         for line in (cell / "episodes.jsonl").read_text().splitlines())
        # Nothing lost, nothing recorded twice.
        assert indices == list(range(FAULT_GRID_EPISODES)), (task, indices)
        # The retry played again at most the one episode in flight when the job died.
        replayed[task] = model.requests.get(mission, 0) - played
        assert 0 <= replayed[task] <= FAULT_GRID_STEPS, (task, model.requests)
    # The numbers are those of a local run of the same grid without faults.
    with openai_stub(answer_fn=SlowModel(0).answer) as stub:
        local = make_project(repo, tmp_path / "local", _fault_grid(stub.url))
        snakemake(local, "--cores", "2", "evaluate_all")
    for run in (project, local):
        run_cli("aggregate", str(run / "results/runs"), "--out", str(run / "reports"))
    assert tables(project) == tables(local)
    print(f"SLURM faults: {len(states)} jobs in {wall:.0f} s; steps replayed by the "
          f"retries: {replayed}")
