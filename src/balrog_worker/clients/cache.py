"""A response cache shared by every job: rerunning a finished grid calls no model.

Entries are keyed by everything that decides an answer: the backend, the model and its
generation settings, the exact messages and the images they carry, the request seed
(derived from the episode seed, the step and the player) and, when answers are
constrained, the valid actions. The store
is one SQLite file in write-ahead-log mode, which many processes (parallel Snakemake
jobs) read and write at once; a write is a transaction, so an interrupted one leaves the
file as it was.

A cache fault never costs an episode: a file that cannot be opened stops the run before
any work with one line naming it; one that fails later (damaged pages, a full disk) is
reported once and the run carries on without it, every call still made and counted.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

from balrog_worker.cachedir import cache_root
from balrog_worker.clients.base import Client, Completion, Request

log = logging.getLogger(__name__)

MODES = ("on", "off", "refresh")  # refresh: call the model and overwrite the entry
_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT, " \
          "created REAL)"


class CacheError(RuntimeError):
    """The response cache file cannot be used; the message says which and what to do."""


class CacheDamaged(CacheError):
    """The file is not a database, or a malformed one."""


class CacheFull(CacheError):
    """The disk holding the cache is full: the run goes on without it."""


# Free space below which a cache that fails to open or write is taken to have run out of
# room: SQLite says "disk I/O error", not "full", when its WAL index cannot grow.
LOW_SPACE_BYTES = 1 << 20


def disk_full(path: Path, error: Exception) -> bool:
    """Whether ``error`` (from the cache at ``path``) comes from a full disk."""
    import errno
    import shutil

    if "full" in str(error) or getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
        return True
    folder = next((p for p in (path.parent, *path.parent.parents) if p.exists()), None)
    try:
        return folder is not None and shutil.disk_usage(folder).free < LOW_SPACE_BYTES
    except OSError:
        return False


WRITE_BEHIND_S = 0.05  # how long answers gather before they are written together
_COLUMNS = ("key", "completion", "created")
# One multi-row INSERT per this many answers at most, not one statement per answer:
# SQLite lets go of the GIL around every statement it runs, and a writer thread that takes
# it back once per answer keeps interrupting the thread that plays (measured: 70 us of CPU
# a call for the cache with executemany, 40 us this way).
MAX_ROWS_PER_INSERT = 500
_open_caches: weakref.WeakSet[ResponseCache] = weakref.WeakSet()


@atexit.register
def _write_pending_at_exit() -> None:
    """A process that ends without closing its caches still keeps their answers."""
    for cache in list(_open_caches):
        with contextlib.suppress(sqlite3.Error, OSError):
            cache.close()


def default_path() -> Path:
    return cache_root() / "responses.sqlite"


def _damaged(path: Path, error: Exception) -> str:
    return (f"the response cache {path} is damaged ({error}): move it aside (a new one is "
            "made), or run with --cache off, or --cache refresh to set it aside and start "
            "a new one")


class ResponseCache:
    def __init__(self, path: Path | None = None):
        self.path = path or default_path()
        if self.path.exists() and not self.path.is_file():  # sqlite3 would say no more
            raise CacheError(f"the response cache {self.path} is not a file: move it aside, "
                             "or run with --cache off")
        self._lock = threading.Lock()  # the writing connection
        self._queued = threading.Condition()  # the answers not yet written
        self._pending: dict[str, tuple[str, float]] = {}
        self._writer: threading.Thread | None = None
        self._closing = False
        # The batch taken from _pending and being written: still answered from here, as
        # lookups do not wait for the transaction to end.
        self._writing: dict[str, tuple[str, float]] = {}
        self._failure: Exception | None = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                       isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            if disk_full(self.path, error):
                raise CacheFull(str(error)) from None
            raise CacheError(f"the response cache {self.path} cannot be opened ({error}): "
                             "run with --cache off, or see to its folder") from None
        deadline = time.monotonic() + 60
        while True:
            try:
                self._db.execute("PRAGMA busy_timeout=60000")
                # Turning a new file to WAL does not wait out the busy timeout: jobs that
                # create the cache at the same moment get "database is locked" and retry.
                self._db.execute("PRAGMA journal_mode=WAL")
                # No fsync at each insert (only at WAL checkpoints): a crash of the machine
                # can lose the last answers kept, which a rerun asks again, never corrupt
                # the file. With an fsync each, one cell's inserts queued on the disk.
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                self._db.execute("SELECT key, completion FROM responses LIMIT 1").fetchall()
                break
            except sqlite3.OperationalError as error:  # locked, unreadable, a full disk
                if "locked" not in str(error) or time.monotonic() > deadline:
                    self._db.close()
                    if disk_full(self.path, error):
                        raise CacheFull(str(error)) from None
                    raise CacheError(f"the response cache {self.path} cannot be used "
                                     f"({error}): run with --cache off, or see to the "
                                     "file") from None
                time.sleep(random.uniform(0.005, 0.05))
            except sqlite3.DatabaseError as error:  # not a database, or malformed
                self._db.close()
                raise CacheDamaged(_damaged(self.path, error)) from None
        # Lookups on a connection of their own: in WAL mode a reader never waits for a
        # writer, so no lookup waits behind a write-behind transaction (which may itself
        # be waiting for another process's), stalling every episode of the process.
        try:
            self._reader = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                           isolation_level=None)
            self._reader.execute("PRAGMA busy_timeout=60000")
        except sqlite3.Error as error:
            self._db.close()
            raise CacheError(f"the response cache {self.path} cannot be read ({error}): "
                             "run with --cache off, or see to the file") from None
        self._reading = threading.Lock()  # the reader connection
        # A batch goes in as few multi-row INSERTs as the connection's limit on bound
        # values allows.
        self._rows_per_insert = max(1, min(
            MAX_ROWS_PER_INSERT,
            self._db.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // len(_COLUMNS)))

    @staticmethod
    def set_aside(path: Path | None = None) -> Path | None:
        """Rename a damaged cache file (and its WAL files) out of the way; where to."""
        path = path or default_path()
        if not path.exists():
            return None
        aside = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
        for suffix in ("-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
        path.rename(aside)
        return aside

    def get(self, key: str) -> Completion | None:
        with self._queued:
            row = self._pending.get(key) or self._writing.get(key)
        if row is None:
            with self._reading:
                row = self._reader.execute("SELECT completion FROM responses WHERE key = ?",
                                       (key,)).fetchone()
        return Completion(**json.loads(row[0])) if row else None

    def put(self, key: str, completion: Completion) -> None:
        """Keep ``completion``: written behind, with the others of the next
        ``WRITE_BEHIND_S``, in one transaction (a transaction per answer cost a cell
        with hundreds of calls in flight a sixth of its CPU). Raises the error a
        previous write met."""
        if self._failure is not None:
            raise self._failure
        # vars(), not asdict(): the fields are plain values, and asdict copies deeply.
        row = (json.dumps(vars(completion)), time.time())
        with self._queued:
            self._pending[key] = row
            if self._writer is None:
                _open_caches.add(self)
                self._writer = threading.Thread(target=self._write_behind, daemon=True,
                                                name="response-cache")
                self._writer.start()
            self._queued.notify()

    def flush(self) -> None:
        """Wait until every answer put so far is written; raises the error a write met."""
        with self._queued:
            self._queued.wait_for(lambda: not (self._pending or self._writing)
                                  or self._failure is not None)
        if self._failure is not None:
            raise self._failure

    def _write_behind(self) -> None:
        while True:
            with self._queued:
                self._queued.wait_for(lambda: self._pending or self._closing)
                if not self._pending:
                    return  # closing, all written
            if not self._closing:
                time.sleep(WRITE_BEHIND_S)  # let a batch gather
            with self._queued:
                batch, self._pending = self._pending, {}
                self._writing = batch
            try:
                with self._lock:
                    self._db.execute("BEGIN IMMEDIATE")
                    try:
                        for statement, values in _insert_statements(batch, self._rows_per_insert):
                            self._db.execute(statement, values)
                        self._db.execute("COMMIT")
                    except BaseException:
                        if self._db.in_transaction:  # SQLite ends it itself on some errors
                            self._db.execute("ROLLBACK")
                        raise
            except (sqlite3.Error, OSError) as error:
                self._failure = error  # the next put, or close, raises it
                return
            finally:
                with self._queued:
                    self._writing = {}
                    self._queued.notify_all()

    def close(self) -> None:
        """Write what is pending and close; raises the error a write met, if any."""
        with self._queued:
            if self._closing:
                return
            self._closing = True
            self._queued.notify()
        _open_caches.discard(self)
        if self._writer is not None:
            self._writer.join()
        self._db.close()
        self._reader.close()
        if self._failure is not None:
            raise self._failure


_said_full: set[Path] = set()  # caches a full disk kept closed, said once a process


def open_cache(mode: str, path: Path | None = None) -> ResponseCache | None:
    """The cache for ``mode`` (None when off, or when its disk is full: said once, and the
    run goes on without it). A damaged file stops here with CacheError, before any work;
    ``refresh`` sets it aside and starts a new one instead."""
    if mode == "off":
        return None
    try:
        return ResponseCache(path)
    except CacheFull as error:
        where = path or default_path()
        if where not in _said_full:
            _said_full.add(where)
            log.warning("the response cache %s cannot be written (disk full: %s): this run "
                        "goes on without it; every call is still made and counted", where,
                        error)
        return None
    except CacheDamaged:
        if mode != "refresh":
            raise
        aside = ResponseCache.set_aside(path)
        log.warning("the response cache was damaged; set aside as %s, starting a new one",
                    aside)
        return ResponseCache(path)


def _insert_statements(batch: dict[str, tuple[str, float]],
                       rows_per_insert: int) -> Iterator[tuple[str, list]]:
    """The INSERTs that write ``batch`` (key: (completion, created)), with their values,
    each for at most ``rows_per_insert`` rows."""
    rows = [(key, text, when) for key, (text, when) in batch.items()]
    row = f"({', '.join('?' * len(_COLUMNS))})"
    for start in range(0, len(rows), rows_per_insert):
        chunk = rows[start:start + rows_per_insert]
        yield (f"INSERT OR REPLACE INTO responses VALUES {', '.join([row] * len(chunk))}",
               [value for values in chunk for value in values])


def request_key(identity: dict, request: Request) -> str:
    payload = {
        "model": identity,
        "messages": [[m.role, m.content, [hashlib.sha256(i).hexdigest() for i in m.images]]
                     for m in request.messages],
        "seed": request.seed,
        "player": request.player,
        "valid_actions": list(request.valid_actions) if identity.get("constrain_actions")
        else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


class CachedClient(Client):
    """``inner`` behind the cache; counts what it served and what it had to ask."""

    def __init__(self, inner: Client, identity: dict, cache: ResponseCache, mode: str = "on"):
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.inner, self.identity, self.cache, self.mode = inner, identity, cache, mode
        self.max_concurrency = inner.max_concurrency
        self.awaits_on_loop = inner.awaits_on_loop
        self.hits = self.calls = 0
        self.broken = False  # set on the first cache fault: the run goes on without it
        self._count = threading.Lock()

    def complete(self, request: Request) -> Completion:
        key = request_key(self.identity, request)
        if self.mode == "on" and (cached := self._read(key)) is not None:
            with self._count:
                self.hits += 1
            return cached
        completion = self.inner.complete(request)
        with self._count:
            self.calls += 1
        if self.mode != "off":
            self._write(key, completion)
        return completion

    def _read(self, key: str) -> Completion | None:
        if self.broken:
            return None
        try:
            return self.cache.get(key)
        except (sqlite3.Error, OSError, ValueError, TypeError) as error:
            self._give_up(error)
            return None

    def _write(self, key: str, completion: Completion) -> None:
        if self.broken:
            return
        try:
            self.cache.put(key, completion)
        except (sqlite3.Error, OSError) as error:
            self._give_up(error)

    def _give_up(self, error: Exception) -> None:
        """Carry on without the cache, saying so once: the answers are still the
        model's, only no longer kept or reused."""
        with self._count:
            if self.broken:
                return
            self.broken = True
        if isinstance(error, (sqlite3.OperationalError, OSError)) and disk_full(
                self.cache.path, error):
            log.warning("the response cache %s cannot be written (disk full): this run goes "
                        "on without it; every call is still made and counted", self.cache.path)
        else:
            log.warning("%s; this run goes on without it, every call made and counted",
                        _damaged(self.cache.path, error))

    def close(self) -> None:
        self.inner.close()
        try:
            self.cache.close()
        except (sqlite3.Error, OSError) as error:  # the last answers were not kept
            self._give_up(error)
