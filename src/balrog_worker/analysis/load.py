"""Episode and step records from every cell under a results directory, scanned lazily.

Records of different games carry different fields (a MultiGrid episode has goals and
possession, a BabyAI one has not), so every file is scanned with one explicit schema of
the flat fields the analysis reads; fields a record lacks are null, nested per-agent
fields are left out. Cells may still be running: a torn last line is skipped and
reported, and steps count only for committed, non-failed episodes.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from balrog_worker.records import (
    EpisodeRecord,
    GameFacts,
    PublishedFacts,
    StepRecord,
    game_fact_names,
    is_finite,
    is_number,
    polars_schema,
)
from balrog_worker.store import EPISODES, STEPS

log = logging.getLogger(__name__)

# The schemas derive from the record types the episode loop writes: free text the
# analysis never reads (observations, completions) is left out of the step scan.
_MULTIGRID = game_fact_names()  # a frame keeps these only when some record has them
EPISODE_SCHEMA: dict[str, pl.DataType] = {**polars_schema(EpisodeRecord),
                                          **polars_schema(GameFacts),
                                          **polars_schema(PublishedFacts)}
STEP_SCHEMA: dict[str, pl.DataType] = polars_schema(
    StepRecord, skip=("observation", "completion", "reasoning", "candidate", "action",
                      "reward", "terminated", "truncated"))
_EPISODE_KEY = ["run_id", "episode_index"]


def record_files(results: str | Path, name: str) -> list[Path]:
    """Every ``name`` (episodes.jsonl or steps.jsonl) below ``results``, sorted; one that
    is not a regular file (a folder, a link to a device, a pipe) is skipped, said once."""
    found = []
    for path in sorted(Path(results).rglob(name)):
        if path.is_file():
            found.append(path)
        else:
            log.warning("%s: not a regular file, skipped", path)
    return found


def _is_torn(path: Path) -> bool:
    """Whether the file ends inside a record (its writer was killed or is still writing)."""
    with open(path, "rb") as handle:
        handle.seek(0, io.SEEK_END)
        if handle.tell() == 0:
            return False
        handle.seek(-1, io.SEEK_END)
        return handle.read(1) != b"\n"


def _whole_lines(path: Path) -> bytes:
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    if cut < len(data):
        log.warning("%s: skipped a torn last record (%d bytes)", path, len(data) - cut)
    return data[:cut]


def _fits(value: object, dtype: pl.DataType) -> bool:
    """Whether a JSON value can stand in a column of ``dtype`` (null always can)."""
    if value is None:
        return True
    if dtype == pl.Boolean:
        return isinstance(value, bool)
    if dtype == pl.Int64:
        return is_number(value) and isinstance(value, int) and -2**63 <= value < 2**63
    if dtype == pl.Float64:
        return is_finite(value)
    return isinstance(value, str)


def _tolerant_frame(path: Path, schema: dict) -> pl.DataFrame:
    """One file parsed line by line, dropping (and reporting) lines that do not parse or
    hold a field of the wrong type (the rest of the file still counts)."""
    rows = []
    for number, line in enumerate(_whole_lines(path).splitlines(), 1):
        try:
            record = json.loads(line)
        except ValueError:
            log.warning("%s:%d: skipped a corrupt record", path, number)
            continue
        if not isinstance(record, dict):
            log.warning("%s:%d: skipped a record that is not an object", path, number)
            continue
        wrong = next((name for name, dtype in schema.items()
                      if not _fits(record.get(name), dtype)), None)
        if wrong is not None:
            log.warning("%s:%d: skipped a record whose %s is not a %s", path, number, wrong,
                        schema[wrong])
            continue
        rows.append({name: record.get(name) for name in schema})
    return pl.DataFrame(rows, schema=schema, strict=False)


def scan_records(paths: Iterable[Path], schema: dict) -> pl.LazyFrame:
    """A lazy frame over JSONL files; torn files contribute their whole lines only."""
    paths = [path for path in paths if path.stat().st_size > 0]
    whole = [path for path in paths if not _is_torn(path)]
    frames = [pl.scan_ndjson(whole, schema=schema)] if whole else []
    frames += [_tolerant_frame(path, schema).lazy() for path in paths if _is_torn(path)]
    if not frames:
        return pl.LazyFrame(schema=schema)
    return pl.concat(frames, how="vertical")


def _collect(paths: list[Path], schema: dict) -> pl.DataFrame:
    try:
        return scan_records(paths, schema).collect()
    except pl.exceptions.ComputeError as error:
        # A corrupt line inside some file (not a torn end): parse file by file instead.
        log.warning("fast scan failed (%s); reading line by line", str(error).splitlines()[0])
        return pl.concat([_tolerant_frame(path, schema) for path in paths])


def load_episodes(results: str | Path) -> pl.DataFrame:
    """All completed (not failed) episode records found below ``results``; game-specific
    columns no record has are dropped."""
    paths = record_files(results, EPISODES)
    episodes = _collect(paths, EPISODE_SCHEMA) if paths else pl.DataFrame()
    if episodes.is_empty():
        raise FileNotFoundError(f"no {EPISODES} with records under {results}")
    episodes = episodes.filter(~pl.col("failed").fill_null(False))
    empty = [name for name in _MULTIGRID if episodes[name].null_count() == episodes.height]
    return episodes.drop(empty)


def scan_steps(results: str | Path, episodes: pl.DataFrame,
               tolerant: bool = False) -> pl.LazyFrame:
    """Step records of the given (committed) episodes, lazily: steps of an episode a crash
    interrupted, or of a failed one, are left out. ``tolerant``: every file read line by
    line, skipping (and reporting) lines that do not parse or hold mistyped fields; for
    when the fast scan failed on a damaged file."""
    committed = episodes.select(_EPISODE_KEY).unique().lazy()
    paths = record_files(results, STEPS)
    if tolerant:
        frames = [_tolerant_frame(path, STEP_SCHEMA).lazy() for path in paths
                  if path.stat().st_size > 0]
        steps = pl.concat(frames) if frames else pl.LazyFrame(schema=STEP_SCHEMA)
    else:
        steps = scan_records(paths, STEP_SCHEMA)
    return steps.join(committed, on=_EPISODE_KEY, how="semi")
