"""A cell's records kept in object storage while its job runs, for jobs that share no
filesystem (Kubernetes pods, `--shared-fs-usage none`).

On a shared filesystem a retried job finds the records of the one that died in the
cell's directory and resumes from them. A pod starts in a fresh directory, and Snakemake
sends a job's outputs to the storage only when the job succeeds: a job killed mid-cell
would take its finished episodes with it. So ``run --checkpoint s3://bucket/key`` copies
the cell's records there as episodes finish (at most every ``INTERVAL_S``, and whatever
is left when the run stops, a SIGTERM included: the pod's eviction, a time limit), a
retry in another pod fetches them before it starts, and a cell that finished removes
its checkpoint (its records are outputs by then). A job killed without warning (SIGKILL,
a lost node) loses the episodes of its last ``INTERVAL_S`` at most.

S3 and S3-compatible servers (MinIO, Ceph, moto) through boto3, which the Snakemake S3
storage plugin brings; the endpoint and credentials come from the usual AWS variables
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...), as for the plugin and DVC.
"""

from __future__ import annotations

import logging
import re
import time
from pathlib import Path

from balrog_worker.store import CONFIG, EPISODES, STEPS

log = logging.getLogger(__name__)

INTERVAL_S = 60.0
# What a resumed cell needs: the settings its records were made under, and the records.
# Episodes are read before steps: every committed episode's steps are in the copy.
FILES = (CONFIG, EPISODES, STEPS)
_URL = re.compile(r"s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
                  r"/(?P<key>[A-Za-z0-9._/=+@,-]+?)/*")


class CheckpointError(Exception):
    """The checkpoint cannot be read or written (one line, no credentials)."""


class Checkpoint:
    def __init__(self, url: str, directory: Path, client=None):
        """Raises ValueError (one line) for a URL that is not s3://BUCKET/KEY."""
        match = _URL.fullmatch(url)
        if not match or any(part in ("", ".", "..") for part in match["key"].split("/")):
            raise ValueError(
                f"--checkpoint {url!r}: give s3://BUCKET/KEY (a bucket name, then a key of "
                "letters, digits and . _ / = + @ , -)")
        self.url, self.bucket, self.key = url, match["bucket"], match["key"]
        self.dir = Path(directory)
        self._client = client
        self._saved: dict[str, int] = {}  # file -> bytes last sent
        self._last_save = 0.0

    @property
    def client(self):
        if self._client is None:
            try:
                import boto3
            except ImportError:
                raise CheckpointError("--checkpoint needs boto3 (pip install "
                                      "'balrog-worker[cluster]')") from None
            # botocore says at INFO where it found the credentials: noise in a cell's log.
            logging.getLogger("botocore").setLevel(logging.WARNING)
            self._client = boto3.client("s3")
        return self._client

    def _object(self, name: str) -> str:
        return f"{self.key}/{name}"

    def restore(self) -> int:
        """Fetch the records of an earlier job into a directory that has none; how many
        episodes they hold."""
        if (self.dir / EPISODES).exists():
            return 0  # a shared filesystem, or a rerun in the same place: keep what is here
        self.dir.mkdir(parents=True, exist_ok=True)
        fetched = {}
        for name in FILES:
            data = self._get(name)
            if data is not None:
                fetched[name] = data
        if EPISODES not in fetched:
            return 0
        for name, data in fetched.items():
            (self.dir / name).write_bytes(data)
        self._saved = {name: len(data) for name, data in fetched.items()}
        episodes = fetched[EPISODES].count(b"\n")
        log.info("%s: %d episodes restored from %s", self.dir.name, episodes, self.url)
        return episodes

    def episode_committed(self) -> None:
        """Called after each committed episode: save if the last save is old enough."""
        if time.monotonic() - self._last_save >= INTERVAL_S:
            self.save()

    def save(self) -> None:
        """Send the records that changed since the last save, each cut at its last
        complete line."""
        self._last_save = time.monotonic()
        snapshot = {}
        for name in FILES:  # episodes before steps
            path = self.dir / name
            if path.is_file():
                data = path.read_bytes()
                snapshot[name] = data[:data.rfind(b"\n") + 1] if name != CONFIG else data
        for name, data in snapshot.items():
            if self._saved.get(name) != len(data):
                self._put(name, data)
                self._saved[name] = len(data)

    def finish(self, completed: bool) -> None:
        """At the end of the run: remove the checkpoint of a completed cell (its records
        are the job's outputs now), save the records of one that stopped short."""
        if completed:
            for name in FILES:
                self._call("delete", lambda name=name: self.client.delete_object(
                    Bucket=self.bucket, Key=self._object(name)))
        else:
            self.save()

    def _get(self, name: str) -> bytes | None:
        def get():
            try:
                return self.client.get_object(Bucket=self.bucket,
                                              Key=self._object(name))["Body"].read()
            except self.client.exceptions.NoSuchKey:
                return None
        return self._call("read", get)

    def _put(self, name: str, data: bytes) -> None:
        self._call("write", lambda: self.client.put_object(
            Bucket=self.bucket, Key=self._object(name), Body=data))

    def _call(self, what: str, call):
        try:
            return call()
        except CheckpointError:
            raise
        except Exception as error:  # botocore's errors, and the transport's
            # The type and botocore's message (an error code, the bucket and key; never
            # the credentials).
            raise CheckpointError(f"checkpoint {self.url}: cannot {what}: "
                                  f"{type(error).__name__}: {error}") from None
