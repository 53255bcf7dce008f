"""The HTTP layer under every provider SDK: a wall-clock deadline and a size cap per call.

The SDKs' timeouts bound each read, not the call: a server that sends its headers and then
one byte a second holds a call for as long as it likes. So the caller waits for an attempt
no longer than the deadline, and the response body is read through a guarded transport,
which stops any body that grows past the size cap (a 10 MB answer is not read to its end).

Two ways to run an attempt:

* ``within_deadline``: the SDK's synchronous client, the attempt in a thread of its own;
  an abandoned attempt ends at its next chunk (``GuardedTransport``).
* ``CallLoop.within_deadline``: the SDK's async client, the attempt a task on the
  process's one event loop; an abandoned attempt is cancelled. Hundreds of calls in
  flight then cost no thread each and never queue on a connection pool's lock: with 64
  episode threads on one synchronous client, half the busy time went to that lock.
  An episode that runs on the loop itself (``cooperative``) awaits the attempt there,
  ``within_deadline_here``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from types import ModuleType
from typing import TypeVar

try:  # the fork the openai and anthropic SDKs are built on; google-genai takes either
    import httpx2 as httpx
except ImportError:  # pragma: no cover - an install with google-genai alone
    import httpx

T = TypeVar("T")

_attempt = threading.local()  # the guard of the attempt this thread runs, if any
# The guard of the attempt a task of the event loop runs, if any.
_async_attempt: contextvars.ContextVar[_Guard | None] = contextvars.ContextVar(
    "balrog_worker_async_attempt", default=None)


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


class _GuardedAsyncStream(httpx.AsyncByteStream):
    def __init__(self, inner, guard: _Guard):
        self.inner, self.guard = inner, guard

    async def __aiter__(self):
        read = 0
        async for chunk in self.inner:
            read += len(chunk)
            if read > self.guard.max_bytes:
                self.guard.too_large = True
                raise httpx.ReadError(f"response body over {self.guard.max_bytes} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


class GuardedAsyncTransport(httpx.AsyncBaseTransport):
    """``inner`` (an async transport of httpx2), each response body read through the
    size cap of the attempt whose task sends it."""

    def __init__(self, inner):
        self.inner = inner

    async def handle_async_request(self, request):
        response = await self.inner.handle_async_request(request)
        guard = _async_attempt.get()
        if guard is not None:
            response.stream = _GuardedAsyncStream(response.stream, guard)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


def async_http_client(aiohttp_client=None):
    """An ``httpx2.AsyncClient`` for an SDK's async client, with the guarded transport
    around aiohttp's (``aiohttp_client``: the SDK's ``DefaultAioHttpClient``, whose
    transport costs a third of the CPU of httpx's own at a hundred calls in flight), or
    around httpx's own where aiohttp is not installed."""
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    try:
        # The SDK's client is only a carrier of its transport, which opens no
        # connection until the first request.
        inner = aiohttp_client(limits=limits)._transport
    except (TypeError, RuntimeError, AttributeError):  # none given, or aiohttp missing
        inner = httpx.AsyncHTTPTransport(limits=limits)
    return httpx.AsyncClient(transport=GuardedAsyncTransport(inner), limits=limits,
                             follow_redirects=True)


class CallLoop:
    """The process's event loop for async model calls, in a daemon thread, shared by the
    clients that hold it: started by the first, stopped when the last lets go (so a
    process between cells runs no thread of ours, and can fork its workers safely). A
    forked child never uses its parent's: it starts its own."""

    _lock = threading.Lock()
    _current: CallLoop | None = None

    def __init__(self):
        self.pid, self.users = os.getpid(), 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="model-calls",
                                       daemon=True)
        self.thread.start()

    @classmethod
    def hold(cls) -> CallLoop:
        with cls._lock:
            if cls._current is None or cls._current.pid != os.getpid():
                cls._current = CallLoop()
            cls._current.users += 1
            return cls._current

    def release(self) -> None:
        with self._lock:
            self.users -= 1
            if self.users or self.pid != os.getpid():
                return
            if CallLoop._current is self:
                CallLoop._current = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()

    def run(self, coroutine, seconds: float = 30.0):
        """Run ``coroutine`` on the loop and wait for it (closing a client)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(seconds)

    def within_deadline(self, call: Callable[[], Awaitable[T]], seconds: float,
                        max_bytes: int) -> T:
        """The result of awaiting ``call()`` (called here, awaited on the loop):
        DeadlinePassed once ``seconds`` have gone by (the attempt is cancelled),
        BodyTooLarge when its response body passes ``max_bytes``."""
        awaitable = call()
        future = asyncio.run_coroutine_threadsafe(
            within_deadline_here(lambda: awaitable, seconds, max_bytes), self.loop)
        try:
            # Waited for here as well: a busy loop may notice its own deadline late.
            return future.result(timeout=seconds)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise DeadlinePassed from None


async def within_deadline_here(call: Callable[[], Awaitable[T]], seconds: float,
                               max_bytes: int) -> T:
    """The result of awaiting ``call()`` on this loop, its response body read through the
    size cap: DeadlinePassed once ``seconds`` have gone by (the attempt is cancelled),
    BodyTooLarge when the body passes ``max_bytes``. Awaited directly by an episode
    running on the loop (``cooperative``), or for a thread by ``CallLoop``."""
    token = _async_attempt.set(_Guard(time.monotonic() + seconds, max_bytes))
    try:
        async with asyncio.timeout(seconds) as deadline:
            return await call()
    except TimeoutError:
        if deadline.expired():
            raise DeadlinePassed from None
        raise
    except Exception:
        if _async_attempt.get().too_large:
            raise BodyTooLarge from None
        raise
    finally:
        _async_attempt.reset(token)


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
