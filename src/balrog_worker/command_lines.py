"""Command lines from a pipe (``serve``, MOSAIC's interactive mode): read unbuffered,
bounded in length, in a loop that lets a stop signal through.

A blocking buffered read of stdin holds a signal back until the next line arrives when
another thread received it (Ctrl-C then waits for the GUI's next command); the loop here
wakes every WAKE_S. A line is bounded: one longer than MAX_COMMAND_BYTES is skipped to its
end, and the reader says so, instead of growing without bound.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterator

# A command is a line of JSON; a select_action observation may be large, not unbounded.
MAX_COMMAND_BYTES = 16 << 20
# How often the read of stdin wakes while no command comes, so that a signal (Ctrl-C,
# SIGTERM) is handled in the main thread even where another thread received it.
WAKE_S = 0.2


def command_lines(fd: int) -> Iterator[bytes | None]:
    """The lines arriving on file descriptor ``fd`` until it ends (None for a line over
    MAX_COMMAND_BYTES, which is skipped). Read unbuffered, in a loop that wakes every
    WAKE_S: a blocking buffered read would hold a signal back until the next line."""
    pending = bytearray()
    skipping = False  # inside a line too long to keep: dropped up to its end
    while True:
        ready, _, _ = select.select([fd], [], [], WAKE_S)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        while chunk:
            head, newline, chunk = chunk.partition(b"\n")
            if not skipping:
                pending += head
                if len(pending) > MAX_COMMAND_BYTES:
                    pending.clear()
                    skipping = True
                    yield None
            if not newline:
                break
            if not skipping:
                yield bytes(pending)
            pending.clear()
            skipping = False
    if pending:
        yield bytes(pending)
