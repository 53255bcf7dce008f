"""MOSAIC's events: the JSON lines its GUI reads from a worker's stdout, and the
``<run-id>_steps.jsonl`` / ``_episodes.jsonl`` telemetry files, projected from this
project's records; and the pipe that carries them to a reader that polls.

MOSAIC's GUI reads a worker with ``select()`` on the pipe and then a buffered
``readline()`` (``OperatorProcessHandle.try_read_response``): when two lines arrive in one
read, the second waits in the reader's buffer where ``select()`` cannot see it, and the GUI
never reads it. ``EventPipe`` therefore hands such a reader one line at a time: it writes
a line only once the pipe holds nothing of the previous one.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import stat
import struct
import termios
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from balrog_worker.store import EPISODES, STEPS, committed, json_line, read_jsonl

log = logging.getLogger(__name__)


def episode_id(run_id: str, index: int) -> str:
    return f"{run_id}-ep{index:06d}"


class MosaicStream:
    """MOSAIC's events, projected from the records as the cell writes them: one JSON line
    a record on stdout (flushed) and in ``<run-id>_steps.jsonl`` / ``_episodes.jsonl``.

    The telemetry files hold the committed episodes, each once, as the records do: when
    a rerun opens them, lines of an episode that a stop cut short (or that failed) are
    dropped, since the rerun plays that episode again, and lines that a stop kept from
    being written (an episode committed, its event not yet sent) are made from the
    records. A reader that closes stdout stops the events there, not the run."""

    def __init__(self, run_id: str, settings: dict, out: TextIO | None,
                 telemetry: Path | None, records: Path | None = None):
        self.run_id = run_id
        self.settings = settings
        self.out = out
        self._lock = threading.Lock()
        self._files = {}
        if telemetry is not None:
            telemetry.mkdir(parents=True, exist_ok=True)
            episodes, steps = committed_records(records) if records else ({}, [])
            for kind, committed in (("step", steps), ("episode", list(episodes.values()))):
                path = telemetry / f"{run_id}_{kind}s.jsonl"
                self._match_records(path, kind, committed)
                # Open for the run's length; close() closes them.
                self._files[kind] = open(path, "a", encoding="utf-8")  # noqa: SIM115

    def _match_records(self, path: Path, kind: str, committed: list[dict]) -> None:
        """Make the telemetry file ``path`` hold one line for each of the ``committed``
        records (of ``kind``) and nothing else, keeping the lines it has."""
        def key(record: dict) -> tuple:
            return ((record.get("episode_index"),) if kind == "episode" else
                    (record.get("episode_index"), record.get("step_index",
                                                             record.get("step")),
                     record.get("agent_id")))

        wanted = {key(record): record for record in committed}
        lines, torn = read_jsonl(path) if path.is_file() else ([], 0)
        kept, seen = [], set()
        for line in lines:
            if key(line) in wanted and key(line) not in seen:
                seen.add(key(line))
                kept.append(line)
        project = self.step if kind == "step" else self.episode
        missing = [project(record) for k, record in wanted.items() if k not in seen]
        if len(kept) == len(lines) and not torn and not missing:
            return
        log.info("%s: %d lines of episodes to be played again dropped, %d lines made from "
                 "the records", path, len(lines) + torn - len(kept), len(missing))
        partial = path.with_name(path.name + ".partial")
        partial.write_text("".join(map(json_line, kept + missing)), encoding="utf-8")
        os.replace(partial, path)

    def emit(self, kind: str, record: dict) -> None:
        event = self.step(record) if kind == "step" else self.episode(record)
        line = json_line(event)
        with self._lock:
            if self.out is not None and not write_event(self.out, line):
                log.warning("%s: stdout is closed; events go on to the telemetry files "
                            "only", self.run_id)
                self.out = None
            if kind in self._files:
                self._files[kind].write(line)
                self._files[kind].flush()

    def step(self, record: dict) -> dict:
        return {
            "type": "step", "run_id": self.run_id,
            "episode_id": episode_id(self.run_id, record["episode_index"]),
            "episode_index": record["episode_index"], "step_index": record["step"],
            "observation": record["observation"], "action": record["action"],
            "reward": record["reward"], "terminated": record["terminated"],
            "truncated": record["truncated"],
            "info": {"agent_id": record["agent_id"], "valid": record["valid"],
                     "candidate": record["candidate"]},
            "llm_response": record["completion"], "llm_input_tokens": record["input_tokens"],
            "llm_output_tokens": record["output_tokens"],
            "timestamp": datetime.now(UTC).isoformat(),
            # ours, beyond MOSAIC's fields
            "agent_id": record["agent_id"], "valid": record["valid"],
            "reasoning": record["reasoning"], "latency_s": record["latency_s"],
        }

    def episode(self, record: dict) -> dict:
        end = datetime.now(UTC)
        duration = float(record.get("duration_s") or 0.0)
        return {
            "type": "episode", "run_id": self.run_id,
            "episode_id": episode_id(self.run_id, record["episode_index"]),
            "episode_index": record["episode_index"], "env_name": self.settings["env_name"],
            "task": self.settings["task"], "total_reward": record.get("episode_return"),
            "num_steps": record["num_steps"], "terminated": record.get("terminated"),
            "truncated": record.get("truncated"), "success": record.get("success"),
            "start_time": (end - timedelta(seconds=duration)).isoformat(),
            "end_time": end.isoformat(), "duration_seconds": duration,
            "llm_calls": record["llm_calls"], "total_input_tokens": record["input_tokens"],
            "total_output_tokens": record["output_tokens"],
            # ours
            "progression": record.get("progression"), "seed": record["seed"],
            "failed": record.get("failed", False), "error": record.get("error"),
        }

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()


def committed_records(cell_dir: Path) -> tuple[dict[int, dict], list[dict]]:
    """The episode records a rerun in ``cell_dir`` keeps (as CellStore.completed keeps
    them), and their step records."""
    try:
        episodes, _ = read_jsonl(cell_dir / EPISODES)
        steps, _ = read_jsonl(cell_dir / STEPS)
    except OSError:
        return {}, []
    kept = committed(episodes)
    return kept, [step for step in steps if step.get("episode_index") in kept]


def error_event(run_id: str | None, message: str) -> str:
    return json_line({"type": "error", "run_id": run_id, "message": message})


def write_event(out: TextIO | None, line: str) -> bool:
    """Send an event line to a reader that may have gone; False when it has (its end of
    stdout closed, or ours), which is not an error here."""
    if out is None:
        return False
    try:
        out.write(line)
        out.flush()
    except (BrokenPipeError, ValueError):
        return False
    return True


class ReaderGone(Exception):
    """stdout is closed: whoever sent the commands no longer reads the answers."""


def _unread_bytes(fd: int) -> int:
    """How many bytes written to the pipe ``fd`` its reader has not taken yet (Linux and
    macOS answer FIONREAD for either end of a pipe)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


class EventPipe:
    """Event lines to a reader that polls: each line is written once the reader has taken
    every byte of the one before, so that no read ever returns two lines.

    MOSAIC's reader would otherwise lose a line that arrived in the same read as the one
    before it (see the module's docstring). The wait is on the reader, not on a clock: it
    lasts until the pipe is empty, however slow the reader, and it ends at once when the
    reader closes its end (ReaderGone). Where stdout is not a pipe (a file, a terminal),
    lines are written as they come.
    """

    POLL_MIN_S, POLL_MAX_S = 0.0005, 0.02

    def __init__(self, out: TextIO):
        self.out = out
        self.fd = None
        with contextlib.suppress(AttributeError, OSError, ValueError):
            fd = out.fileno()
            if stat.S_ISFIFO(os.fstat(fd).st_mode):
                _unread_bytes(fd)  # raises where the platform cannot tell
                self.fd = fd

    def write(self, line: str) -> None:
        """Write one line (ending in a newline), or raise ReaderGone."""
        if self.fd is not None:
            self._wait_until_read()
        if not write_event(self.out, line):
            raise ReaderGone

    def _wait_until_read(self) -> None:
        poller = select.poll()
        poller.register(self.fd, select.POLLOUT)
        pause = self.POLL_MIN_S
        while _unread_bytes(self.fd) > 0:
            for _, events in poller.poll(0):
                if events & (select.POLLERR | select.POLLHUP):
                    raise ReaderGone
            time.sleep(pause)  # a signal (SIGTERM, Ctrl-C) is handled between sleeps
            pause = min(pause * 2, self.POLL_MAX_S)
