"""Episode records from every cell under a results directory, as one polars frame."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import polars as pl

from balrog_worker.store import EPISODES

log = logging.getLogger(__name__)


def _read_records(path: Path) -> pl.DataFrame | None:
    """One episodes.jsonl, skipping a torn last line (a cell still running or killed)."""
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        log.warning("%s: skipped a torn last record (%d bytes)", path, len(data) - cut)
        data = data[:cut]
    if not data:
        return None
    try:
        return pl.read_ndjson(io.BytesIO(data), infer_schema_length=None)
    except pl.exceptions.ComputeError:
        # A corrupt line inside the file: keep the lines that parse.
        rows = []
        for number, line in enumerate(data.splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except ValueError:
                log.warning("%s:%d: skipped a corrupt record", path, number)
        return pl.DataFrame(rows, infer_schema_length=None) if rows else None


def load_episodes(results: str | Path) -> pl.DataFrame:
    """All completed (not failed) episode records found below ``results``."""
    paths = sorted(Path(results).rglob(EPISODES))
    frames = [frame for path in paths if (frame := _read_records(path)) is not None]
    if not frames:
        raise FileNotFoundError(f"no {EPISODES} with records under {results}")
    episodes = pl.concat(frames, how="diagonal_relaxed")
    return episodes.filter(~pl.col("failed").fill_null(False))
