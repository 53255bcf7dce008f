"""Stub model servers on 127.0.0.1 that speak each provider's wire format.

A ``StubServer`` answers every POST with the next behaviour of its script (then "ok"
forever): a normal completion, a 429 with Retry-After, a 500, a hang past the client's
timeout, a dropped connection, a malformed body, an empty completion, or a drip (the
headers at once, then the body one byte every ``drip_s``; endlessly, chunked, for
"endless_drip"). It records
every request (path, headers, JSON body, the behaviour it got and when it arrived) so
tests can assert what the SDK sent. After the script, a ``FaultSchedule`` may inject
seeded random faults instead of answering "ok" forever. Providers differ only in
``ok_body`` and ``error_body`` (see the modules beside this).
"""

from __future__ import annotations

import json
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BEHAVIOURS = ("ok", "429", "500", "hang", "drop", "malformed", "empty", "400", "401",
              "drip", "endless_drip")
# The faults a client should survive by retrying.
TRANSIENT_FAULTS = ("429", "500", "hang", "drop", "malformed", "empty")


class FaultSchedule:
    """Seeded random faults: each attempt of a request fails with probability ``rate``,
    with a fault drawn uniformly from ``kinds``.

    The draw depends on (``seed``, the request, which attempt at it this is), not on the
    order requests arrive in, so concurrent clients meet the same faults on every run. A
    request is identified by its ``seed`` field where it has one (the evaluator derives it
    from the episode, the step and the player), else by its whole body.
    """

    def __init__(self, rate: float, seed: int, kinds: Sequence[str] = TRANSIENT_FAULTS):
        unknown = set(kinds) - set(BEHAVIOURS)
        if unknown or not 0 <= rate <= 1:
            raise ValueError(f"bad fault schedule: rate {rate}, unknown kinds {unknown}")
        self.rate, self.seed, self.kinds = rate, seed, tuple(kinds)
        self._attempts: Counter = Counter()

    @staticmethod
    def request_key(body: dict) -> str:
        seed = body.get("seed")
        return f"seed:{seed}" if isinstance(seed, int) else json.dumps(body, sort_keys=True)

    def draw(self, body: dict) -> str:
        """The behaviour for this attempt at ``body`` (not thread-safe: the server calls
        it under its lock)."""
        key = self.request_key(body)
        attempt = self._attempts[key]
        self._attempts[key] += 1
        rng = random.Random(f"{self.seed}/{key}/{attempt}")
        return rng.choice(self.kinds) if rng.random() < self.rate else "ok"


class StubServer:
    def __init__(self, ok_body: Callable[[dict, str, str], dict],
                 error_body: Callable[[int, str], dict], *, answer: str = "go forward",
                 script: list[str] | None = None, hang_s: float = 5.0,
                 answer_fn: Callable[[dict], str] | None = None,
                 faults: FaultSchedule | None = None, retry_after: str = "0",
                 drip_s: float = 0.5):
        self.ok_body, self.error_body = ok_body, error_body
        self.answer, self.answer_fn = answer, answer_fn
        self.script = list(script or [])
        self.faults = faults  # after the script; None: "ok" forever
        self.hang_s = hang_s
        self.drip_s = drip_s
        self.retry_after = retry_after  # the Retry-After header of a 429
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.handle_error = self._quiet_handle_error(self._server.handle_error)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        kwargs={"poll_interval": 0.02})

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> StubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()

    @staticmethod
    def _quiet_handle_error(default):
        """Stay quiet when a client gave up on a hung answer (the point of "hang");
        report anything else as usual."""

        def handle_error(request, client_address):
            if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
                default(request, client_address)

        return handle_error

    def next_behaviour(self, body: dict | None = None) -> str:
        with self._lock:
            return self._next_behaviour(body or {})

    def _next_behaviour(self, body: dict) -> str:
        if self.script:
            return self.script.pop(0)
        return self.faults.draw(body) if self.faults else "ok"

    def _handler(self):
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def _drip(self, behaviour: str, body: dict) -> None:
                """Headers now, then one byte at a time, until the client hangs up."""
                payload = json.dumps(stub.ok_body(body, stub.answer, self.path)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if behaviour == "drip":
                    self.send_header("Content-Length", str(len(payload)))
                else:
                    self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for index in range(10**9):
                        time.sleep(stub.drip_s)
                        if behaviour == "drip":
                            if index >= len(payload):
                                return
                            self.wfile.write(payload[index:index + 1])
                        else:
                            self.wfile.write(b"1\r\n \r\n")  # whitespace, forever
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("latin-1")}
                with stub._lock:
                    behaviour = stub._next_behaviour(body)
                    stub.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body, "behaviour": behaviour,
                                          "time": time.monotonic()})
                if behaviour == "hang":
                    time.sleep(stub.hang_s)
                    behaviour = "ok"  # if the client is still there, answer late
                if behaviour in ("drip", "endless_drip"):
                    self._drip(behaviour, body)
                    return
                if behaviour == "drop":
                    self.close_connection = True
                    self.connection.close()
                    return
                if behaviour == "malformed":
                    self._send(200, b'{"choices": [ this is not json')
                    return
                if behaviour in ("429", "500", "400", "401"):
                    status = int(behaviour)
                    headers = {"Retry-After": stub.retry_after} if status == 429 else None
                    message = {429: "rate limited", 500: "internal error", 400: "bad request",
                               401: "invalid api key"}[status]
                    self._send(status, json.dumps(stub.error_body(status, message)).encode(),
                               headers)
                    return
                text = "" if behaviour == "empty" else (
                    stub.answer_fn(body) if stub.answer_fn else stub.answer)
                self._send(200, json.dumps(stub.ok_body(body, text, self.path)).encode())

        return Handler
