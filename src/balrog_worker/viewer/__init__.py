"""The episode viewer: a page that browses a results tree cell by cell and plays any
episode back step by step, its frames rendered by replaying the game from the records.

``serve`` answers the page's data requests from the results on demand (``balrog-worker
view``); ``export`` writes the same page and data as static files (``balrog-worker report``
writes them beside the report). Both work from the records alone: no model, no key, no
network.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections import OrderedDict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import unquote, urlsplit

from balrog_worker.viewer import data

log = logging.getLogger(__name__)

EPISODE_FILE = re.compile(r"[0-9]{1,9}\.json")  # an episode's data: its index
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
REQUEST_TIMEOUT_S = 30
WORKERS = 16
REPLAYS_AT_ONCE = 2  # episodes replayed at once (each takes a core)
EPISODE_CACHE_BYTES = 256 << 20  # replayed episodes kept, in bytes of JSON
# Frames of every episode up to this many steps in all are exported; beyond, each cell's
# best and worst episode only (the served viewer replays any episode on demand).
EXPORT_STEP_BUDGET = 5_000


def page() -> bytes:
    return resources.files("balrog_worker.viewer").joinpath("index.html").read_bytes()


def _json(value) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


class Viewer:
    """The viewer's data for one results tree.

    An episode's frames come from replaying it, the one costly answer: each is replayed
    once however many requests ask for it at the same time (they wait for the one
    replay), at most ``replays`` at once, and kept afterwards within ``cache_bytes``. A
    replay is bounded by its cell's step cap, so one whose client has gone still ends,
    and its answer serves the next request."""

    def __init__(self, results: Path, replays: int = REPLAYS_AT_ONCE,
                 cache_bytes: int = EPISODE_CACHE_BYTES):
        self.results = Path(results)
        self._replaying = threading.BoundedSemaphore(replays)
        self._cache_bytes = cache_bytes
        self._kept: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._flights: dict[tuple[str, int], threading.Lock] = {}
        self._lock = threading.Lock()  # guards _kept and _flights

    def answer(self, path: str) -> tuple[bytes, str] | None:
        """The body and content type at ``path``, or None for a path that is not the
        viewer's (unknown cells included)."""
        parts = [unquote(part) for part in path.strip("/").split("/") if part]
        try:
            if parts in ([], ["index.html"]):
                return page(), "text/html; charset=utf-8"
            if parts == ["data", "cells.json"]:
                return _json(data.grid(self.results)), "application/json"
            if len(parts) == 4 and parts[:2] == ["data", "cells"]:
                cell = data.cell_dir(self.results, parts[2])
                if parts[3] == "episodes.json":
                    return _json(data.episodes(cell)), "application/json"
                if EPISODE_FILE.fullmatch(parts[3]):
                    return self.episode(parts[2], int(parts[3][:-5])), "application/json"
        except KeyError:  # an unknown cell
            return None
        except LookupError as error:  # an episode that is not there or cannot be replayed
            log.warning("%s", error)
            return None
        except OSError as error:  # a record that is not a regular file, or unreadable
            log.warning("%s: %s", path, error)
            return None
        return None

    def episode(self, slug: str, index: int) -> bytes:
        """Episode ``index`` of cell ``slug`` as JSON; LookupError if it cannot be
        replayed."""
        key = (slug, index)
        with self._lock:
            if key in self._kept:
                self._kept.move_to_end(key)
                return self._kept[key]
            flight = self._flights.setdefault(key, threading.Lock())
        with flight:  # a second request for the same episode waits for the first replay
            with self._lock:
                if key in self._kept:
                    return self._kept[key]
            try:
                with self._replaying:
                    body = self._replay(slug, index)
                self._keep(key, body)  # kept before the flight ends: no second replay
            finally:
                with self._lock:
                    self._flights.pop(key, None)
            return body

    def _replay(self, slug: str, index: int) -> bytes:
        from balrog_worker.replay import ReplayError

        try:
            return _json(data.episode(data.cell_dir(self.results, slug), index))
        except ReplayError as error:
            raise LookupError(str(error)) from None
        except (KeyError, OSError):
            raise
        except Exception as error:  # a game that refuses what the records say
            raise LookupError(f"{slug} episode {index}: the replay failed "
                              f"({type(error).__name__}: {error})") from None

    def _keep(self, key: tuple[str, int], body: bytes) -> None:
        if len(body) > self._cache_bytes:
            return
        with self._lock:
            self._kept[key] = body
            while sum(map(len, self._kept.values())) > self._cache_bytes:
                self._kept.popitem(last=False)


class _BoundedServer(ThreadingHTTPServer):
    """At most ``workers`` requests answered at once; a connection beyond them is closed
    at once rather than given a thread."""

    daemon_threads = True

    def __init__(self, address, handler, workers: int = WORKERS):
        super().__init__(address, handler)
        self._slots = threading.BoundedSemaphore(workers)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


def _loopback(host: str) -> bool:
    return host in LOOPBACK


def serve(results: Path, port: int = 8765, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server of the viewer on ``host:port`` (0: any free port), not yet started. On a
    loopback address it answers only requests that name a loopback host (a page of
    another site rebinding its name to 127.0.0.1 gets nothing)."""
    viewer = Viewer(results)
    check_host = _loopback(host)

    class Handler(BaseHTTPRequestHandler):
        timeout = REQUEST_TIMEOUT_S  # an idle or dripping client is dropped

        def log_message(self, *args):
            pass

        def do_GET(self):
            named = urlsplit(f"//{self.headers.get('Host', '')}").hostname or ""
            if check_host and not _loopback(named):
                self.send_error(421, "unknown host")
                return
            try:
                found = viewer.answer(urlsplit(self.path).path)
            except Exception as error:  # a defect of ours: said, and the server goes on
                log.error("%s: %s: %s", self.path, type(error).__name__, error)
                self.send_error(500)
                return
            if found is None:
                self.send_error(404)
                return
            body, kind = found
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    return _BoundedServer((host, port), Handler)


def _write(out: Path, path: str, body: bytes) -> None:
    """A data file, and the script form a page opened from disk loads instead."""
    target = out / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(body)
    Path(f"{target}.js").write_bytes(b"viewerData(" + _json(path) + b"," + body + b");\n")


def export(results: Path, out: Path,
           step_budget: int = EXPORT_STEP_BUDGET) -> tuple[int, dict[str, list[dict]]]:
    """Write the viewer as static files under ``out`` (``out/index.html``, ``out/data``);
    returns how many episodes were exported with their frames, and every cell's episode
    rows by slug (in the grid's order)."""
    import shutil

    viewer = Viewer(results)
    cells = data.grid(Path(results))
    shutil.rmtree(out / "data", ignore_errors=True)  # no episode of an older grid stays
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_bytes(page())
    _write(out, "data/cells.json", _json(cells))
    listed = {}
    for cell in cells:
        rows = data.episodes(Path(results) / cell["slug"])
        listed[cell["slug"]] = rows
        _write(out, f"data/cells/{cell['slug']}/episodes.json", _json(rows))
    total = sum(row["num_steps"] or 0 for rows in listed.values() for row in rows
                if not row.get("failed"))
    exported = 0
    for slug, rows in listed.items():
        chosen = ([row["episode_index"] for row in rows if not row.get("failed")]
                  if total <= step_budget else data.best_and_worst(rows))
        for index in chosen:
            try:
                body = viewer.episode(slug, index)
            except LookupError as error:  # a record that cannot be replayed: left out
                log.warning("%s episode %d: not exported (%s)", slug, index, error)
                continue
            _write(out, f"data/cells/{slug}/{index}.json", body)
            exported += 1
    return exported, listed
