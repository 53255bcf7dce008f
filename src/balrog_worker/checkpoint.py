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

import io
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
        self._wait_s = INTERVAL_S

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
        if not self._exists(EPISODES):
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        for name in FILES:
            if name == EPISODES or self._exists(name):
                partial = self.dir / f".{name}.restoring"
                # Streamed to disk (a steps file may be large), renamed when whole.
                self._call("read", lambda name=name, partial=partial: self.client.download_file(
                    self.bucket, self._object(name), str(partial)))
                partial.replace(self.dir / name)
                self._saved[name] = (self.dir / name).stat().st_size
        with open(self.dir / EPISODES, "rb") as records:
            episodes = sum(1 for _ in records)
        log.info("%s: %d episodes restored from %s", self.dir.name, episodes, self.url)
        return episodes

    def episode_committed(self) -> None:
        """Called after each committed episode: save if the last save is old enough."""
        if time.monotonic() - self._last_save >= self._wait_s:
            self.save()

    def save(self) -> None:
        """Send the records that grew since the last save, each up to its last complete
        line. A save that took t seconds waits at least 10 t for the next, so that a cell
        with large records spends at most a tenth of its time sending them."""
        started = time.monotonic()
        lengths = {}
        for name in FILES:  # episodes before steps: every committed episode's steps follow
            path = self.dir / name
            if path.is_file():
                # config.json is written whole (and renamed into place); records grow
                lengths[name] = (path.stat().st_size if name == CONFIG
                                 else _complete_length(path))
        for name, length in lengths.items():
            if length and self._saved.get(name) != length:
                with open(self.dir / name, "rb") as file:
                    self._call("write", lambda file=file, name=name, length=length:
                               self.client.upload_fileobj(_Prefix(file, length), self.bucket,
                                                          self._object(name)))
                self._saved[name] = length
        self._last_save = time.monotonic()
        self._wait_s = max(INTERVAL_S, 10 * (self._last_save - started))

    def finish(self, completed: bool) -> None:
        """At the end of the run: remove the checkpoint of a completed cell (its records
        are the job's outputs now), save the records of one that stopped short."""
        if completed:
            for name in FILES:
                self._call("delete", lambda name=name: self.client.delete_object(
                    Bucket=self.bucket, Key=self._object(name)))
        else:
            self.save()

    def _exists(self, name: str) -> bool:
        def head():
            try:
                self.client.head_object(Bucket=self.bucket, Key=self._object(name))
            except self.client.exceptions.ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                    return False
                raise
            return True
        return self._call("read", head)

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


def _complete_length(path: Path, block: int = 65536) -> int:
    """The length of ``path`` up to and including its last newline (a record being
    written is left out), read from the end."""
    with open(path, "rb") as file:
        end = file.seek(0, 2)
        while end > 0:
            start = max(0, end - block)
            file.seek(start)
            chunk = file.read(end - start)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                return start + newline + 1
            end = start
    return 0


class _Prefix(io.RawIOBase):
    """The first ``length`` bytes of an open file, as a file to upload (the file may grow
    meanwhile)."""

    def __init__(self, file, length: int):
        self._file, self._left = file, length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        data = self._file.read(size)
        buffer[:len(data)] = data
        self._left -= len(data)
        return len(data)
