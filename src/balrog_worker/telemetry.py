"""The live record stream for MOSAIC: every record as one JSON line on stdout.

When streaming, the process's stdout belongs to records alone: anything else a library
prints to ``sys.stdout`` is sent to stderr instead.
"""

from __future__ import annotations

import sys
import threading
from typing import TextIO

from balrog_worker.store import json_line


class RecordStream:
    def __init__(self, out: TextIO):
        self.out = out
        self._lock = threading.Lock()

    @classmethod
    def take_stdout(cls) -> RecordStream:
        """Claim the real stdout for records and point ``sys.stdout`` at stderr."""
        stream = cls(sys.stdout)
        sys.stdout = sys.stderr
        return stream

    def emit(self, kind: str, record: dict) -> None:
        line = json_line({"type": kind, **record})
        with self._lock:
            self.out.write(line)
            self.out.flush()
