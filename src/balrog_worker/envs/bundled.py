"""The data BALROG's games read, shipped with the package and unpacked on first use.

Two archives in ``envs/data/`` (their licences and provenance beside them, README.md):

- DeepMind's Boxoban levels (``hard/``, ``medium/train``): minihack's Boxoban tasks pick
  a level with Python's ``random.choice`` over the levels of every file of the set, the
  files in directory-listing order. That order is the filesystem's, so it is fixed here
  as the order of the files in the archive, the order BALROG's reference traces were made
  with; the levels are written once, in that order, as fixed-size records.
- BALROG's TextWorld games (``tw_games/<task>/``, 25 per task with their ``.json``).

Nothing is downloaded: the archives are part of the package. They are unpacked under
the cache folder (``$BALROG_WORKER_CACHE``), into a folder named after the archive's
hash, by one process at a time, and renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.resources
import os
import shutil
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path

from balrog_worker.cachedir import cache_root

BOXOBAN_ARCHIVE = "boxoban-levels-hard-medium.tar.xz"
TEXTWORLD_ARCHIVE = "balrog-textworld-games.tar.xz"
# minihack's Boxoban level sets (its env's ``level_set``/``level_mode``): folder in the
# archive -> the file of records written here.
BOXOBAN_SETS = {"hard": "hard/", "medium": "medium/train/"}
LEVEL_ROWS, LEVEL_COLUMNS = 10, 10
RECORD_SIZE = LEVEL_ROWS * (LEVEL_COLUMNS + 1)  # ten rows, each with its newline


def archive_path(name: str) -> Path:
    return Path(str(importlib.resources.files("balrog_worker.envs").joinpath("data", name)))


@cache
def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def _unpacked(archive: str, unpack: Callable[[tarfile.TarFile, Path], None]) -> Path:
    """The folder ``unpack`` fills from ``archive``, made the first time it is asked for."""
    source = archive_path(archive)
    if not source.is_file():
        raise FileNotFoundError(f"{source} is missing: reinstall balrog-worker (the package "
                                "ships it)")
    stem = archive.removesuffix(".tar.xz")
    folder = cache_root() / "data" / f"{stem}-{_digest(source)[:12]}"
    if folder.is_dir():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{folder}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # parallel jobs: one unpacks, the others wait
        if folder.is_dir():
            return folder
        scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
        try:
            with tarfile.open(source) as archive_file:
                unpack(archive_file, scratch)
            os.replace(scratch, folder)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return folder


def _write_boxoban(archive: tarfile.TarFile, target: Path) -> None:
    with contextlib.ExitStack() as files:
        outputs = {name: files.enter_context(open(target / f"{name}.levels", "wb"))
                   for name in BOXOBAN_SETS}
        for member in archive:  # the archive's order is the order the levels keep
            folder, _, file_name = member.name.rpartition("/")
            level_set = next((name for name, prefix in BOXOBAN_SETS.items()
                              if f"{folder}/" == prefix), None)
            if level_set is None or not member.isfile() or not file_name.endswith(".txt"):
                continue
            text = archive.extractfile(member).read().decode("ascii")
            for level in parse_level_file(text):
                outputs[level_set].write(level.encode("ascii"))


def parse_level_file(text: str) -> list[str]:
    """The levels of one Boxoban file as minihack reads them: blocks of lines closed by a
    blank line, each without its first line (the level's number). A block the file does
    not close with a blank line is not a level (minihack drops it too)."""
    levels, block = [], []
    for line in text.splitlines(keepends=True):
        if line != "\n":
            block.append(line)
            continue
        level = "".join(block[1:])
        rows = level.split("\n")[:-1]
        if len(rows) != LEVEL_ROWS or any(len(row) != LEVEL_COLUMNS for row in rows):
            raise ValueError(f"a Boxoban level is not {LEVEL_ROWS}x{LEVEL_COLUMNS}: {level!r}")
        levels.append(level)
        block = []
    return levels


class BoxobanLevels(Sequence[str]):
    """The levels of one set, in minihack's order, read from their file on demand (the
    medium set holds 450,000 levels: nothing is kept in memory)."""

    def __init__(self, path: Path):
        self.path = path
        self._count = path.stat().st_size // RECORD_SIZE

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int) -> str:  # type: ignore[override]
        if not -self._count <= index < self._count:
            raise IndexError(index)
        with open(self.path, "rb") as file:
            file.seek((index % self._count) * RECORD_SIZE)
            return file.read(RECORD_SIZE).decode("ascii")


@cache
def boxoban_levels(level_set: str) -> BoxobanLevels:
    """The levels of minihack's Boxoban ``level_set`` ("hard" or "medium")."""
    if level_set not in BOXOBAN_SETS:
        raise ValueError(f"unknown Boxoban level set {level_set!r}; known: "
                         f"{', '.join(BOXOBAN_SETS)}")
    return BoxobanLevels(_unpacked(BOXOBAN_ARCHIVE, _write_boxoban) / f"{level_set}.levels")


def _extract_games(archive: tarfile.TarFile, target: Path) -> None:
    # The "data" filter refuses links and paths leaving the folder.
    archive.extractall(target, filter="data")


def textworld_games(task: str) -> list[Path]:
    """BALROG's games of a TextWorld ``task`` in BALROG's order: its factory globs every
    ``*.ulx`` file, then every ``*.z8`` file, each glob sorted by path."""
    folder = _unpacked(TEXTWORLD_ARCHIVE, _extract_games) / "tw_games" / task
    games = [*sorted(folder.glob("*.ulx"), key=str), *sorted(folder.glob("*.z8"), key=str)]
    if not games:
        raise FileNotFoundError(f"no TextWorld games for task {task!r} in {folder}")
    return games
