"""The HTTP layer under every provider SDK: a wall-clock deadline and a size cap per call.

The SDKs' timeouts bound each read, not the call: a server that sends its headers and then
one byte a second holds a call for as long as it likes. So each attempt runs in a thread
of its own and the caller waits for it no longer than the deadline; the response body
is read through ``GuardedTransport``, which stops the abandoned attempt at its next chunk
and stops any body that grows past the size cap (a 10 MB answer is not read to its end).
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import TypeVar

try:  # the fork the openai and anthropic SDKs are built on; google-genai takes either
    import httpx2 as httpx
except ImportError:  # pragma: no cover - an install with google-genai alone
    import httpx

T = TypeVar("T")

_attempt = threading.local()  # the guard of the attempt this thread runs, if any


class DeadlinePassed(Exception):
    """The call did not finish within its wall-clock deadline."""


class BodyTooLarge(Exception):
    """The response body passed the size cap; it was not read further."""


class _Guard:
    def __init__(self, deadline: float, max_bytes: int):
        self.deadline, self.max_bytes = deadline, max_bytes
        self.abandoned = False  # the caller stopped waiting: end the read
        self.too_large = False


@functools.cache
def _guarded_transport(module: ModuleType) -> type:
    """httpx's transport class of ``module`` (httpx or its fork httpx2), reading each
    response body through the guard of the attempt running in this thread."""

    class GuardedStream(module.SyncByteStream):
        def __init__(self, inner, guard: _Guard):
            self.inner, self.guard = inner, guard

        def __iter__(self) -> Iterator[bytes]:
            read = 0
            for chunk in self.inner:
                if self.guard.abandoned or time.monotonic() > self.guard.deadline:
                    raise module.ReadTimeout("the call's deadline passed")
                read += len(chunk)
                if read > self.guard.max_bytes:
                    self.guard.too_large = True
                    raise module.ReadError(f"response body over {self.guard.max_bytes} bytes")
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class GuardedTransport(module.HTTPTransport):
        def handle_request(self, request):
            response = super().handle_request(request)
            guard = getattr(_attempt, "guard", None)
            if guard is not None:
                response.stream = GuardedStream(response.stream, guard)
            return response

    return GuardedTransport


def http_client(module: ModuleType = httpx):
    """A ``module.Client`` for an SDK (``module``: httpx2, which the openai and anthropic
    SDKs take, or httpx, which older google-genai takes): the SDKs' own defaults
    (redirects followed, a large pool), with the guarded transport. Timeouts stay the
    SDK's, per request."""
    limits = module.Limits(max_connections=1000, max_keepalive_connections=100)
    return module.Client(transport=_guarded_transport(module)(limits=limits), limits=limits,
                         follow_redirects=True)


def within_deadline(call: Callable[[], T], seconds: float, max_bytes: int) -> T:
    """``call()``'s result, or DeadlinePassed once ``seconds`` have gone by (the attempt
    is abandoned and ends at its next chunk or read timeout), or BodyTooLarge when its
    response body passes ``max_bytes``."""
    guard = _Guard(time.monotonic() + seconds, max_bytes)
    outcome: dict = {}
    done = threading.Event()

    def attempt() -> None:
        _attempt.guard = guard
        try:
            outcome["value"] = call()
        except BaseException as error:  # handed to the caller
            outcome["error"] = error
        finally:
            _attempt.guard = None
            done.set()

    threading.Thread(target=attempt, name="model-call", daemon=True).start()
    if not done.wait(seconds):
        guard.abandoned = True
        raise DeadlinePassed
    if guard.too_large:
        raise BodyTooLarge
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]
