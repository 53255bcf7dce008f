"""A response cache shared by every job: rerunning a finished grid calls no model.

Entries are keyed by everything that decides an answer: the backend, the model and its
generation settings, the exact messages and the images they carry, the request seed
(derived from the episode seed, the step and the player) and, when answers are
constrained, the valid actions. The store
is one SQLite file in write-ahead-log mode, which many processes (parallel Snakemake
jobs) read and write at once; a write is a transaction, so an interrupted one leaves the
file as it was.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import threading
import time
from dataclasses import asdict
from pathlib import Path

from balrog_worker.cachedir import cache_root
from balrog_worker.clients.base import Client, Completion, Request

MODES = ("on", "off", "refresh")  # refresh: call the model and overwrite the entry
_SCHEMA = "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, completion TEXT, " \
          "created REAL)"


def default_path() -> Path:
    return cache_root() / "responses.sqlite"


class ResponseCache:
    def __init__(self, path: Path | None = None):
        self.path = path or default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=60, check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA busy_timeout=60000")
        deadline = time.monotonic() + 60
        while True:
            try:
                # Turning a new file to WAL does not wait out the busy timeout: jobs that
                # create the cache at the same moment get "database is locked" and retry.
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_SCHEMA)
                break
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    self._db.close()
                    raise
                time.sleep(random.uniform(0.005, 0.05))

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?",
                                   (key,)).fetchone()
        return Completion(**json.loads(row[0])) if row else None

    def put(self, key: str, completion: Completion) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?)",
                             (key, json.dumps(asdict(completion)), time.time()))

    def close(self) -> None:
        self._db.close()


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
        self.hits = self.calls = 0
        self._count = threading.Lock()

    def complete(self, request: Request) -> Completion:
        key = request_key(self.identity, request)
        if self.mode == "on" and (cached := self.cache.get(key)) is not None:
            with self._count:
                self.hits += 1
            return cached
        completion = self.inner.complete(request)
        with self._count:
            self.calls += 1
        if self.mode != "off":
            self.cache.put(key, completion)
        return completion

    def close(self) -> None:
        self.inner.close()
        self.cache.close()
