"""Stopping on a signal. SIGTERM is handled as Ctrl-C is: a cluster's scheduler, `kill`
and MOSAIC's Stop all send it, and each wants what Ctrl-C gives (episodes in flight stop,
nothing committed is touched, one line says so) rather than a silent death.

Python raises the exception of a signal wherever the main thread happens to be, even
between taking a lock and the ``try`` that would release it: a stop arriving while the
main thread waits on the episodes' futures (``concurrent.futures.wait`` holds every
future's lock for a moment) left those locks taken, and the process hung at exit (about 1
stop in 20, seen). Where that can happen, ``stops_deferred`` notes the signal instead, and
the loop raises it at a point of its choosing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread where Ctrl-C's KeyboardInterrupt would be."""


def _terminate(signum, frame) -> None:
    raise Terminated


@contextmanager
def sigterm_interrupts() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated (in the main thread only: a handler
    cannot be set elsewhere, and there nothing needs it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class Deferral:
    """A stop signal noted while deferred; ``check`` raises it (KeyboardInterrupt for
    SIGINT, Terminated for SIGTERM)."""

    def __init__(self):
        self.signum: int | None = None

    def note(self, signum, frame) -> None:
        self.signum = self.signum or signum

    def check(self) -> None:
        if self.signum == signal.SIGTERM:
            raise Terminated
        if self.signum is not None:
            raise KeyboardInterrupt


@contextmanager
def stops_deferred() -> Iterator[Deferral]:
    """Within the block SIGINT and SIGTERM are noted, not raised: call ``check()`` of the
    Deferral at safe points (and soon: the block must poll). A signal noted and not yet
    raised is raised as the block ends."""
    deferral = Deferral()
    if threading.current_thread() is not threading.main_thread():
        yield deferral  # no signal reaches this thread
        return
    previous = {number: signal.signal(number, deferral.note)
                for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield deferral
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
    deferral.check()


EXIT_TERMINATED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT
