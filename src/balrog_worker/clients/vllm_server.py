"""A vLLM server started by the job that uses it (a ``vllm`` model with ``serve``).

On a cluster each such cell is one job holding ``serve.gpus`` GPUs: it starts
``vllm serve MODEL`` on 127.0.0.1 with that tensor-parallel size and prefix caching (every
step's prompt extends the last one's, so the shared prefix is computed once), waits until
the server lists its model, plays the cell against it, and stops it. For a grid with many
cells of one model, a long-running server shared through ``base_url`` saves reloading the
weights per cell (README, "Running on a cluster").
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import replace

from balrog_worker.clients.base import Client, Completion, Request
from balrog_worker.config import ModelSpec

log = logging.getLogger(__name__)

POLL_S = 1.0
STOP_GRACE_S = 30.0
# The server is on 127.0.0.1: never through an HTTP proxy set in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class ServerError(RuntimeError):
    """The server could not be started; the message says why in one line."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class VLLMServer:
    """One ``vllm serve`` process, from start until ``stop()``."""

    def __init__(self, spec: ModelSpec):
        serve = spec.serve
        self.spec = spec
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.argv = [
            *serve.command, "serve", spec.model, "--host", "127.0.0.1",
            "--port", str(self.port), "--tensor-parallel-size", str(serve.gpus),
            "--enable-prefix-caching", *serve.args,
        ]
        log.info("%s: starting %s", spec.name, " ".join(self.argv))
        try:
            # Its own process group, so that stopping it stops its workers too; its output
            # goes to the job's log (stderr), never to the record stream on stdout.
            self.process = subprocess.Popen(self.argv, stdout=sys.stderr, stderr=sys.stderr,
                                            stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as error:
            raise ServerError(f"model {spec.name!r}: cannot start {serve.command[0]!r} "
                              f"({error.strerror}); install vllm or set serve.command") from None
        try:
            self._wait_until_ready(serve.startup_timeout_s)
        except BaseException:
            self.stop()
            raise

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.process.poll()
            if code is not None:
                raise ServerError(f"model {self.spec.name!r}: vllm serve exited with code "
                                  f"{code} before answering (its output is in this log)")
            if self._lists_model():
                log.info("%s: vllm server ready at %s", self.spec.name, self.url)
                return
            time.sleep(POLL_S)
        raise ServerError(f"model {self.spec.name!r}: vllm serve did not answer within "
                          f"{timeout_s:g} s (serve.startup_timeout_s)")

    def _lists_model(self) -> bool:
        try:
            with _DIRECT.open(f"{self.url}/models", timeout=5) as response:
                listed = json.load(response).get("data", [])
        except (OSError, urllib.error.URLError, ValueError):
            return False  # not listening yet, or still loading
        return any(entry.get("id") == self.spec.model for entry in listed)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        for sig, wait_s in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(wait_s)
                return
            except subprocess.TimeoutExpired:
                continue


class ServedClient(Client):
    """A client of a server this job started: closing it stops the server."""

    def __init__(self, spec: ModelSpec, make_inner):
        self.server = VLLMServer(spec)
        try:
            self.inner = make_inner(replace(spec, serve=None, base_url=self.server.url))
        except BaseException:
            self.server.stop()
            raise
        self.max_concurrency = self.inner.max_concurrency
        self.awaits_on_loop = self.inner.awaits_on_loop

    def complete(self, request: Request) -> Completion:
        return self.inner.complete(request)

    def close(self) -> None:
        try:
            self.inner.close()
        finally:
            self.server.stop()
