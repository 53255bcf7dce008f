"""The grid with no shared filesystem, as on Kubernetes: every job in a fresh directory
of its own (tests/pods.py), every input and output through Snakemake's S3 storage plugin
into a bucket of a local S3 server, the report built from the bucket alone; a job killed
mid-cell resumes in another pod from its checkpoint in the bucket. Then the results
through DVC's S3 remote: pushed, pulled into a fresh clone, the figures made again
without a cell rerun."""

from __future__ import annotations

import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli
from tests.s3_server import S3Server, missing
from tests.slurm_cluster import processes_with, terminate
from tests.stubs.openai_server import openai_stub
from tests.test_slurm import SlowModel, snakemake, stub_grid, tables
from tests.test_workflow import make_project, sh

pytestmark = pytest.mark.skipif(bool(missing()), reason=missing() or "")

BUCKET, PREFIX = "lab", "grid"
EPISODES, STEPS = 6, 8
PODS = (REPO / "tests" / "pods.py").resolve()


def _grid(url: str) -> dict:
    return stub_grid(url, seed=13, tasks=["goto", "pickup"], episodes=EPISODES, steps=STEPS)


def pod_options() -> tuple[str, ...]:
    """What profiles/kubernetes gives Snakemake about files (storage, no shared
    filesystem, sources deployed through the storage), with pods on this machine."""
    pods = f"{shlex.quote(sys.executable)} {shlex.quote(str(PODS))}"
    return ("--executor", "cluster-generic",
            "--cluster-generic-submit-cmd", f"{pods} submit",
            "--cluster-generic-status-cmd", f"{pods} status",
            "--default-storage-provider", "s3",
            "--default-storage-prefix", f"s3://{BUCKET}/{PREFIX}",
            "--shared-fs-usage", "none", "--job-deploy-sources",
            "--jobs", "2", "--retries", "1", "--latency-wait", "5",
            "--max-status-checks-per-second", "5", "--seconds-between-status-checks", "1")


class Evictor(threading.Thread):
    """Sends SIGTERM (what Kubernetes sends a pod it evicts) to the worker playing the
    goto cell once its pod has recorded three episodes."""

    def __init__(self, pod_root: Path):
        super().__init__(daemon=True)
        self.pod_root = pod_root
        self.evicted: int | None = None  # episodes recorded when the pod went
        self.stop = threading.Event()

    def run(self) -> None:
        cell = "results/runs/stub__naive__babyai__goto/episodes.jsonl"
        while self.evicted is None and not self.stop.wait(0.1):
            for records in self.pod_root.glob(
                    f"pod-*/.snakemake/storage/s3/{BUCKET}/{PREFIX}/{cell}"):
                recorded = len(records.read_text().splitlines())
                pod = self.pod_root / records.relative_to(self.pod_root).parts[0]
                if recorded >= 3 and (worker := _worker_in(pod)):
                    os.kill(worker, signal.SIGTERM)
                    self.evicted = recorded
                    return


def _worker_in(pod: Path) -> int | None:
    """The `balrog_worker run` process working in ``pod``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if b"balrog_worker" in cmdline and b"run" in cmdline and cwd == pod:
            return int(entry.name)
    return None


@pytest.mark.slow
def test_the_grid_through_object_storage_in_fresh_pods(repo, tmp_path):
    model = SlowModel(0.15)
    pod_root = tmp_path / "pods"
    pod_root.mkdir()
    with S3Server.start(buckets=(BUCKET,)) as s3, \
            openai_stub(answer_fn=model.answer) as stub:
        env = {**os.environ, **s3.env, "POD_ROOT": str(pod_root)}
        project = make_project(repo, tmp_path / "project", _grid(stub.url))
        evictor = Evictor(pod_root)
        evictor.start()
        started = time.monotonic()
        try:
            snakemake(project, *pod_options(), env=env)
        finally:
            evictor.stop.set()
            evictor.join()
            # No pod outlives the test, even one a failed run left behind.
            for pid in processes_with(f"POD_ROOT={pod_root}"):
                terminate(pid)
        wall = time.monotonic() - started
        keys = s3.keys(BUCKET, PREFIX)
        bucket_tables = {
            name: s3.read(BUCKET, f"{PREFIX}/reports/tables/{name}").decode()
            for name in ("leaderboard.csv", "per_env.csv", "per_task.csv", "other_envs.csv")}
        goto_log = s3.read(BUCKET, f"{PREFIX}/logs/evaluate/stub__naive__babyai__goto.log")

    # Nothing stayed in the workflow's own directory: every job ran in a pod.
    assert not (project / "results").exists() and not (project / "reports").exists()
    pods = sorted(pod_root.glob("pod-*"))
    # Two cells, the goto cell twice (evicted once), the tables, the figures, the report.
    assert len(pods) == 6, [p.name for p in pods]
    for cell in ("stub__naive__babyai__goto", "stub__naive__babyai__pickup"):
        for name in ("summary.json", "episodes.jsonl", "steps.jsonl"):
            assert f"{PREFIX}/results/runs/{cell}/{name}" in keys
    assert f"{PREFIX}/reports/index.html" in keys
    assert f"{PREFIX}/reports/viewer.tar" in keys  # the viewer, as one archive
    # A finished cell leaves no checkpoint behind.
    assert not [key for key in keys if key.startswith(f"{PREFIX}/checkpoints/")], keys

    # The evicted job's episodes came back from the checkpoint in the retry's pod: the
    # retry played again at most the episode in flight.
    assert evictor.evicted is not None
    assert b"episodes restored from s3://" in goto_log, goto_log[-2000:]
    replayed = model.requests["go to"] - EPISODES * STEPS
    assert 0 <= replayed <= STEPS, model.requests
    assert model.requests["pick up"] == EPISODES * STEPS

    # The tables in the bucket are those of a local run of the same grid.
    with openai_stub(answer_fn=SlowModel(0).answer) as stub:
        local = make_project(repo, tmp_path / "local", _grid(stub.url))
        snakemake(local, "--cores", "2", "evaluate_all")
    run_cli("aggregate", str(local / "results/runs"), "--out", str(local / "reports"))
    assert bucket_tables == tables(local)
    print(f"storage grid: {len(pods)} pods in {wall:.0f} s; evicted after "
          f"{evictor.evicted} episodes, {replayed} steps replayed")


GRID = {
    "seed": 17,
    "paths": {"results": "results/runs", "reports": "reports"},
    "models": {"random": {"backend": "random"}},
    "agents": {"naive": {}},
    "envs": {"babyai": {"tasks": ["goto", "pickup"], "episodes": 3, "max_steps": 10}},
    "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]},
}


@pytest.mark.slow
def test_results_pushed_to_an_s3_remote_make_the_figures_again_in_a_fresh_clone(
        repo, tmp_path):
    with S3Server.start(buckets=(BUCKET,)) as s3:
        env = s3.env  # the remote's endpoint and keys: AWS_ENDPOINT_URL and the like
        project = make_project(repo, tmp_path / "project", GRID)
        sh("dvc", "repro", cwd=project, env=env)
        sh("dvc", "remote", "add", "-d", "lab", f"s3://{BUCKET}/dvc", cwd=project, env=env)
        sh("git", "add", "-A", cwd=project)
        sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "ran",
           cwd=project)
        pushed = sh("dvc", "push", cwd=project, env=env)
        assert s3.keys(BUCKET, "dvc/"), pushed.stdout

        clone = tmp_path / "clone"
        sh("git", "clone", "-q", str(project), str(clone), cwd=tmp_path)
        assert not (clone / "results").exists()
        sh("dvc", "pull", cwd=clone, env=env)
        remade = sh("dvc", "repro", cwd=clone, env=env)

    # The records came from the remote: no cell was played again, the tables and figures
    # were made from them, and they are those of the first clone.
    assert "Running stage 'evaluate'" not in remade.stdout, remade.stdout
    assert "Running stage 'figures'" in remade.stdout, remade.stdout
    for name in ("episodes.jsonl", "steps.jsonl"):
        for cell in ("random__naive__babyai__goto", "random__naive__babyai__pickup"):
            path = f"results/runs/{cell}/{name}"
            assert (clone / path).read_bytes() == (project / path).read_bytes()
    assert tables(clone) == tables(project)
    assert (clone / "reports/figures/leaderboard.png").stat().st_size > 10_000


def test_a_checkpoint_that_is_not_an_s3_url_is_refused_before_any_work(tmp_path):
    for url in ("file:///etc/passwd", "s3://lab/../other", "s3://lab", "/tmp/x"):
        result = run_cli("run", "--env", "babyai/goto", "--model", "random", "--episodes",
                         "1", "--out", str(tmp_path / "out"), "--checkpoint", url,
                         check=False)
        assert result.returncode == 2, (url, result.stderr)
        assert result.stderr.strip().count("\n") == 0, result.stderr
        assert "give s3://BUCKET/KEY" in result.stderr
        assert not (tmp_path / "out").exists()


def test_a_checkpoint_store_out_of_reach_is_one_line_without_the_key(tmp_path):
    secret = "not-to-be-printed-8f1c2e"
    result = run_cli("run", "--env", "babyai/goto", "--model", "random", "--episodes", "1",
                     "--out", str(tmp_path / "out"), "--checkpoint", "s3://lab/x/cell",
                     check=False, env={"AWS_ENDPOINT_URL": "http://127.0.0.1:9",
                                       "AWS_ACCESS_KEY_ID": "id", "AWS_MAX_ATTEMPTS": "1",
                                       "AWS_SECRET_ACCESS_KEY": secret})
    assert result.returncode == 1, result.stderr
    assert "checkpoint s3://lab/x/cell: cannot read" in result.stderr
    assert result.stderr.strip().count("\n") == 0 and secret not in result.stderr


def test_a_checkpoint_sends_complete_records_only_and_brings_them_back(tmp_path):
    from balrog_worker.checkpoint import Checkpoint

    cell = tmp_path / "cell"
    cell.mkdir()
    (cell / "config.json").write_text('{\n  "seed": 1\n}')  # whole, newline or not
    (cell / "episodes.jsonl").write_bytes(b'{"episode_index": 0}\n{"episode_index": 1}\n'
                                          b'{"episode_ind')  # a record being written
    # Above boto3's multipart threshold (8 MB): sent in parts, from the file.
    steps = b"".join(b'{"step": %d, "pad": "%s"}\n' % (i, b"x" * 1000) for i in range(9000))
    (cell / "steps.jsonl").write_bytes(steps)
    url = f"s3://{BUCKET}/checkpoints/results/runs/cell"
    with S3Server.start(buckets=(BUCKET,)) as s3:
        saver = Checkpoint(url, cell, client=s3.client())
        saver.save()
        prefix = "checkpoints/results/runs/cell"
        assert s3.read(BUCKET, f"{prefix}/episodes.jsonl") == \
            b'{"episode_index": 0}\n{"episode_index": 1}\n'
        assert s3.read(BUCKET, f"{prefix}/steps.jsonl") == steps
        assert s3.read(BUCKET, f"{prefix}/config.json") == b'{\n  "seed": 1\n}'

        fresh = tmp_path / "pod" / "cell"
        assert Checkpoint(url, fresh, client=s3.client()).restore() == 2
        assert (fresh / "steps.jsonl").read_bytes() == steps
        assert (fresh / "config.json").read_text() == '{\n  "seed": 1\n}'
        assert not list(fresh.glob(".*restoring"))
        # Where records are already (a shared filesystem), nothing is fetched.
        assert Checkpoint(url, cell, client=s3.client()).restore() == 0

        saver.finish(completed=True)
        assert s3.keys(BUCKET, prefix) == []
