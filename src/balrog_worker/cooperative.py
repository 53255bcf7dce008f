"""Synchronous code run as tasks of an asyncio event loop, on greenlets.

An episode is plain synchronous code: reset, then a model call and a game step, again
and again. Played as threads, each model call crosses from the episode's thread to the
event loop that sends it and back, and a process with hundreds of episodes in flight
spends much of its time handing the GIL between those threads and the loop (at 256 in
flight over two processes, 2.0 ms of CPU a call on threads, 1.4 ms this way). Here an episode
runs on a greenlet of the loop's own thread instead: where it would wait for a model
call, it hands the call's coroutine to the loop and is resumed with the answer. The
process then plays on one thread, with nothing to hand over.

    with GreenletExecutor(loop, max_workers=64) as episodes:   # any thread
        future = episodes.submit(play, index)                  # play() runs on the loop
    ...
    answer = wait(coroutine)      # inside play(): the loop serves the others meanwhile

Greenlets take turns: one step (from a resumption to its next ``wait``) per iteration of
the loop. The loop runs, in one iteration, every callback that was ready when it began,
and what a step schedules waits for the next one. aiohttp on Python 3.11 writes a
request from a task of its own, so when a hundred episodes were resumed in one iteration,
each one's request left only after all their steps had run: at 256 in flight a call
took 40 ms longer than the server's delay, and the requests left, and came back, in
bursts. Taking turns, each request leaves right after its step: 20-40 ms spared a call,
and 0.91 of the ideal rate instead of 0.81 (medians of 8 runs each, bench/README.md),
for a loop iteration per step rather than per burst.

``wait`` is only valid where ``cooperative()`` is true; code that may run either way
(a model client called from a thread, or from an episode's greenlet) checks first.
Code on a greenlet must not block on what only another greenlet releases (a lock held
across a ``wait``, a thread pool's future whose work needs the loop): the loop would
stop. ``all_at_once`` is the way to run several calls together from a greenlet.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import threading
import weakref
from collections.abc import Awaitable, Callable
from typing import TypeVar

import greenlet

T = TypeVar("T")


class _Cooperative(greenlet.greenlet):
    """A greenlet running synchronous code for a task of the loop; its parent is the
    loop's own greenlet, to which it switches with each awaitable it waits for."""


def cooperative() -> bool:
    """Whether the caller runs on a greenlet of ``run_cooperatively`` (``wait`` works)."""
    return isinstance(greenlet.getcurrent(), _Cooperative)


def wait(awaitable: Awaitable[T]) -> T:
    """Await ``awaitable`` on the loop running this greenlet and return its result (or
    raise its exception, cancellation included); the loop runs its other tasks
    meanwhile."""
    current = greenlet.getcurrent()
    if not isinstance(current, _Cooperative):
        if asyncio.iscoroutine(awaitable):
            awaitable.close()  # never to be awaited: no "never awaited" warning
        raise RuntimeError("cooperative.wait called outside run_cooperatively")
    return current.parent.switch(awaitable)


class _Turns:
    """The greenlets of one loop waiting to take their step, granted one per iteration
    of the loop, first come first served."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._waiting: collections.deque[asyncio.Future] = collections.deque()
        self._granting = False

    def next(self) -> asyncio.Future:
        """A future done when the caller's turn has come."""
        turn = self._loop.create_future()
        self._waiting.append(turn)
        if not self._granting:
            self._granting = True
            self._loop.call_soon(self._grant)
        return turn

    def _grant(self) -> None:
        # The turn's task resumes in the next iteration, before this is called again.
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():  # not cancelled while waiting
                turn.set_result(None)
                break
        if self._waiting:
            self._loop.call_soon(self._grant)
        else:
            self._granting = False


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = \
    weakref.WeakKeyDictionary()


def _turns_on(loop: asyncio.AbstractEventLoop) -> _Turns:
    turns = _turns.get(loop)
    if turns is None:
        turns = _turns[loop] = _Turns(loop)
    return turns


async def run_cooperatively(function: Callable[..., T], *args) -> T:
    """``function(*args)`` on a greenlet of its own; each ``wait`` in it is awaited
    here, in the calling task. Its first step, and each step after an answer, waits
    for its turn; an error at a ``wait`` (a cancellation included) is raised there at
    once."""
    turns = _turns_on(asyncio.get_running_loop())
    runner = _Cooperative(function)
    await turns.next()
    outcome = runner.switch(*args)
    while not runner.dead:
        # ``outcome`` is what the function waits for: it resumes with the result, or
        # with the exception raised at its ``wait``.
        try:
            value = await outcome
            await turns.next()
        except BaseException as error:  # a cancellation of the task ends the function too
            outcome = runner.throw(error)
        else:
            outcome = runner.switch(value)
    return outcome


def all_at_once(calls: list[Callable[[], T]]) -> list[T]:
    """From a greenlet: each of ``calls`` on a greenlet of its own, all at once; their
    results in order. Every call ends before the first error (in order) is raised."""
    outcomes = wait(asyncio.gather(*(run_cooperatively(call) for call in calls),
                                   return_exceptions=True))
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return outcomes


class GreenletExecutor(concurrent.futures.Executor):
    """An executor whose calls run on greenlets of the event loop ``loop`` (which runs
    in another thread), at most ``max_workers`` at once and the rest queued in order.
    As with a thread pool, a queued call can be cancelled and a running one cannot (it
    ends as it ends: an episode at its next step, once told to stop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_workers: int):
        if max_workers < 1:
            raise ValueError("max_workers must be at least 1")
        self._loop, self._max_workers = loop, max_workers
        self._slots: asyncio.Semaphore | None = None  # made on the loop, at first use
        self._futures: set[concurrent.futures.Future] = set()
        self._tasks: set[asyncio.Task] = set()  # touched on the loop only
        self._lock = threading.Lock()
        self._shut = False

    def submit(self, fn: Callable[..., T], /, *args, **kwargs) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._shut:
                raise RuntimeError("cannot submit to a GreenletExecutor after shutdown")
            self._futures.add(future)
        future.add_done_callback(self._forget)
        self._loop.call_soon_threadsafe(self._start, future,
                                        functools.partial(fn, *args, **kwargs))
        return future

    def _start(self, future: concurrent.futures.Future, call: Callable[[], T]) -> None:
        task = self._loop.create_task(self._run(future, call))
        self._tasks.add(task)  # the loop itself keeps only a weak reference
        task.add_done_callback(self._tasks.discard)

    async def _run(self, future: concurrent.futures.Future, call: Callable[[], T]) -> None:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self._max_workers)
        async with self._slots:
            if not future.set_running_or_notify_cancel():
                return  # cancelled while queued
            try:
                result = await run_cooperatively(call)
            except BaseException as error:  # the caller's to see, as a thread pool's
                future.set_exception(error)
            else:
                future.set_result(result)

    def _forget(self, future: concurrent.futures.Future) -> None:
        with self._lock:
            self._futures.discard(future)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shut = True
            futures = list(self._futures)
        if cancel_futures:
            for future in futures:
                future.cancel()  # the queued ones; a running call cannot be
        if wait:
            concurrent.futures.wait(futures)
