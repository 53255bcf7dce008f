"""The results directory of one cell: crash-safe JSONL, resumable episode by episode.

Layout: ``episodes.jsonl`` (one record per finished episode), ``steps.jsonl`` (one per
step) and ``summary.json``. An episode is committed by its episode line, written (and
fsynced) after all of its step lines. So after a crash at any moment:

- a torn or unparseable last line is dropped, and that episode is redone;
- step lines without a committed episode line are dropped (the episode is redone);
- failed episodes (``failed: true``) are dropped so a rerun retries them;
- nothing committed is rewritten, redone or duplicated.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import stat
import threading
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

EPISODES = "episodes.jsonl"
STEPS = "steps.jsonl"
SUMMARY = "summary.json"
CONFIG = "config.json"
LOCK = ".lock"


class StoreError(RuntimeError):
    pass


class DiskFull(StoreError):
    """A write found no space left; what was committed before it is intact."""


@contextmanager
def _writing(path: Path, partial: Path | None = None):
    """Turn a full disk while writing ``path`` into one line saying so (and remove the
    half-written ``partial``); other errors pass through."""
    try:
        yield
    except OSError as error:
        if error.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        if partial is not None:
            partial.unlink(missing_ok=True)
        raise DiskFull(f"{path}: no space left on the device; finished episodes are kept "
                       "(free some space and rerun to go on)") from None


def _replace_text(target: Path, text: str) -> None:
    """Write ``target`` whole or not at all (a partial file, then renamed over it)."""
    partial = target.with_suffix(".partial")
    with _writing(target, partial):
        partial.write_text(text)
        os.replace(partial, target)


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The intact records of a JSONL file and how many lines were torn or corrupt. Only a
    regular file is read (records copied from elsewhere may be a link to a device or a
    pipe, which would never end)."""
    if not path.exists():
        return [], 0
    if not stat.S_ISREG(path.stat().st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    records, bad = [], 0
    data = path.read_bytes()
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the file ended with a newline, as every complete record does
    elif lines:
        lines.pop()  # no newline after the last line: the write was cut short
        bad += 1
    for line in lines:
        try:
            record = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            bad += 1
            continue
        if isinstance(record, dict):
            records.append(record)
        else:
            bad += 1
    return records, bad


def _diff(old: object, new: object, path: str = "") -> list[str]:
    """Dotted paths where two JSON values differ. A key present on one side only is not a
    difference: settings added to (or dropped from) the code later must not lock a
    directory of existing results."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [d for k in old.keys() & new.keys()
                for d in _diff(old[k], new[k], f"{path}.{k}" if path else k)]
    return [] if old == new else [path]


# Line breaks to Python's str.splitlines() (and to some editors and JavaScript), though
# JSON allows them raw in strings: escaped, so a record is one line to every reader.
_BREAKS = str.maketrans({"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def json_line(record: dict) -> str:
    """``record`` as one line of JSONL (UTF-8 text kept readable, with its newline)."""
    return json.dumps(record, ensure_ascii=False, allow_nan=False).translate(_BREAKS) + "\n"


def _dumps(record: dict) -> bytes:
    return json_line(record).encode("utf-8")


def committed(episodes: list[dict]) -> dict[int, dict]:
    """The committed episodes among a cell's episode records, by index: the first record
    of each whole-number index that did not fail (what a rerun keeps and skips)."""
    kept: dict[int, dict] = {}
    for record in episodes:
        index = record.get("episode_index")
        if isinstance(index, int) and not record.get("failed"):
            kept.setdefault(index, record)
    return kept


class CellStore:
    """Exclusive writer of one cell directory (a lock file keeps a second run out)."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self._write_lock = threading.Lock()
        self._lock_file = None

    def __enter__(self) -> CellStore:
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock_file = open(self.dir / LOCK, "w")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise StoreError(f"another run is writing to {self.dir}") from None
        return self

    def __exit__(self, *exc) -> None:
        if self._lock_file:
            self._lock_file.close()

    def claim(self, settings: dict) -> None:
        """Bind the directory to ``settings`` (what decides the trajectories), or refuse
        if it already holds records made under other settings."""
        path = self.dir / CONFIG
        if path.exists():
            previous = json.loads(path.read_text())
            changed = sorted(_diff(previous, settings))
            if changed:
                raise StoreError(
                    f"{self.dir} holds records made with other settings (changed: "
                    f"{', '.join(changed)}); move them away or choose another --out"
                )
            return
        _replace_text(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def completed(self) -> dict[int, dict]:
        """Recover from any interruption and return the committed episodes by index."""
        episodes, torn = read_jsonl(self.dir / EPISODES)
        kept = committed(episodes)
        dropped = torn + len(episodes) - len(kept)
        steps, torn_steps = read_jsonl(self.dir / STEPS)
        kept_steps = [s for s in steps if s.get("episode_index") in kept]
        orphans = len(steps) - len(kept_steps) + torn_steps
        if dropped or orphans:
            log.warning(
                "%s: dropped %d unfinished, failed or torn episode records and %d step "
                "records; those episodes will be run again", self.dir, dropped, orphans,
            )
            self._rewrite(EPISODES, kept.values())
            self._rewrite(STEPS, kept_steps)
        return kept

    def _rewrite(self, name: str, records) -> None:
        target = self.dir / name
        partial = target.with_suffix(".rewrite")
        with _writing(target, partial):
            with open(partial, "wb") as out:
                out.writelines(_dumps(r) for r in records)
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, target)

    def commit(self, steps: list[dict], episode: dict) -> None:
        """Append one episode: its steps, then the episode line that commits them."""
        with self._write_lock:
            payloads = ((STEPS, b"".join(map(_dumps, steps))), (EPISODES, _dumps(episode)))
            for name, payload in payloads:
                # A step line cut short by a full disk is dropped on the next run, with
                # the episode it belongs to (it has no episode line yet).
                with _writing(self.dir / name), open(self.dir / name, "ab") as out:
                    out.write(payload)
                    out.flush()
                    os.fsync(out.fileno())

    def write_summary(self, summary: dict) -> None:
        _replace_text(self.dir / SUMMARY, json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
