"""What the episode viewer shows, as JSON, read lazily from a results tree.

Three levels, each read only when asked for: the grid (one small ``summary.json`` per
cell, never a steps file), a cell's episodes (its ``episodes.jsonl``), and one episode
step by step (its step records, with frames rendered by replaying the game). The server
answers these at ``data/...`` paths, and the static export writes the same files there,
so the page is the same in both.
"""

from __future__ import annotations

import base64
import logging
import os
import re
from pathlib import Path

from balrog_worker import documents
from balrog_worker.records import is_count, is_finite
from balrog_worker.replay import Replay
from balrog_worker.store import EPISODES, SUMMARY, read_jsonl

log = logging.getLogger(__name__)

# A cell directory's name (Cell.slug); never "..", never hidden.
SLUG = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*$")
EPISODE_FIELDS = ("episode_index", "seed", "num_steps", "progression", "end_reason",
                  "success", "invalid_actions", "llm_calls", "input_tokens", "output_tokens",
                  "cost_usd", "failed", "error")
# Bounds of what the viewer reads of a cell (its summary is a few kB; 100,000 episodes
# of records are about 100 MB).
MAX_SUMMARY_BYTES = 1 << 20
MAX_EPISODES_BYTES = 256 << 20
NUMERIC_FIELDS = ("seed", "num_steps", "progression", "invalid_actions", "llm_calls",
                  "input_tokens", "output_tokens", "cost_usd")
CELL_KEYS = ("model", "agent", "env", "task", "coordination_level", "observation_mode")
STEP_FIELDS = ("observation", "completion", "reasoning", "candidate", "action", "valid",
               "reward", "input_tokens", "output_tokens", "latency_s", "answer_truncated")


def cell_dir(results: Path, slug: str) -> Path:
    """The directory of cell ``slug`` (refusing any name that is not a cell's)."""
    path = results / slug
    if not SLUG.match(slug) or not (path / SUMMARY).is_file():
        raise KeyError(slug)
    return path


def grid(results: Path) -> list[dict]:
    """One row per finished cell: its keys and aggregate (summary.json files only)."""
    rows = []
    with os.scandir(results) as entries:
        for entry in entries:
            if not entry.is_dir() or not SLUG.match(entry.name):
                continue
            try:
                summary = documents.load_json(documents.read_text(
                    os.path.join(entry.path, SUMMARY), limit=MAX_SUMMARY_BYTES))
            except FileNotFoundError:
                continue  # not a cell, or one still running
            except documents.DocumentError as error:
                log.warning("%s: its %s %s: cell left out", entry.name, SUMMARY, error)
                continue
            cell, aggregate = _mapping(summary, "cell"), _mapping(summary, "aggregate")
            rows.append({
                **{key: value for key, value in cell.items()
                   if key in CELL_KEYS and (value is None or isinstance(value, (str, int)))},
                "slug": entry.name,  # the directory's, never the record's
                "episodes": _number(aggregate.get("episodes")) or 0,
                "progression": _number(aggregate.get("progression")),
                "progression_se": _number(aggregate.get("progression_se")),
                "failed": _number(aggregate.get("failed_episodes")) or 0,
                "cost_usd": _number(aggregate.get("cost_usd")) or 0.0,
            })
    rows.sort(key=lambda row: row["slug"])
    return rows


def episodes(path: Path) -> list[dict]:
    """A cell's episodes, in order (failed ones too: the viewer says why). A record whose
    index is not a whole number is left out (it names files of the export); numbers that
    are not numbers read as missing."""
    file = path / EPISODES
    try:
        if file.exists() and file.stat().st_size > MAX_EPISODES_BYTES:
            raise OSError(f"larger than {MAX_EPISODES_BYTES:,} bytes")
        records, _ = read_jsonl(file)
    except OSError as error:
        log.warning("%s: %s cannot be read (%s)", path.name, EPISODES, error)
        return []
    rows = []
    for record in records:
        index = record.get("episode_index")  # read_jsonl gives JSON objects only
        if not is_count(index):
            log.warning("%s: an episode record without a valid episode_index: left out",
                        path.name)
            continue
        row = {key: record.get(key) for key in EPISODE_FIELDS}
        for key in NUMERIC_FIELDS:
            row[key] = _number(row[key])
        rows.append(row)
    return sorted(rows, key=lambda row: row["episode_index"])


def _mapping(record: object, key: str) -> dict:
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, dict) else {}


def _number(value: object) -> int | float | None:
    """``value`` if it is a finite number, else None."""
    return value if is_finite(value) else None


def png_url(frame) -> str:
    from balrog_worker.clients.images import encode_png

    return "data:image/png;base64," + base64.b64encode(encode_png(frame)).decode()


def _imported_from(path: Path) -> str | None:
    """The BALROG submission a cell was imported from (None for a run of ours)."""
    try:
        summary = documents.load_json(documents.read_text(path / SUMMARY,
                                                          limit=MAX_SUMMARY_BYTES))
    except (FileNotFoundError, documents.DocumentError):
        return None
    imported = _mapping(summary, "imported")
    submission = imported.get("submission")
    return str(submission)[:200] if imported else None


def recorded_episode(path: Path, index: int, submission: str) -> dict:
    """A published episode (imported from BALROG's leaderboard) as its records have it:
    its trajectory, without frames (BALROG's seeds drew other games than ours, so it is
    not replayed)."""
    from balrog_worker.store import STEPS

    records, _ = read_jsonl(path / STEPS) if (path / STEPS).is_file() else ([], 0)
    mine = sorted((r for r in records if r.get("episode_index") == index and
                   is_count(r.get("step"))), key=lambda r: r["step"])
    known = {row["episode_index"]: row for row in episodes(path)}
    if index not in known:
        raise KeyError(index)
    steps = [{"step": r["step"], "frames": {},
              "players": {str(r.get("agent_id", "agent_0")): {
                  key: r.get(key) for key in STEP_FIELDS}}, "facts": {}} for r in mine]
    steps.append({"step": len(steps), "frames": {}, "players": {}, "facts": {}})
    return {"cell": path.name, "episode": known[index], "steps": steps, "mismatches": [],
            "multi_agent": False, "published": submission}


def episode(path: Path, index: int) -> dict:
    """Episode ``index`` step by step: what each player was shown and did, its frames
    (replayed), the game's facts after each step, and any disagreement of the replay
    with the records. A published episode imported from BALROG's leaderboard is shown
    from its records (``recorded_episode``)."""
    submission = _imported_from(path)
    if submission is not None:
        return recorded_episode(path, index, submission)
    replay = Replay(path, index)
    steps, mismatches = [], []
    for replayed in replay:
        mismatches += replayed.mismatches
        steps.append({
            "step": replayed.step,
            "frames": {player: png_url(frame) for player, frame in replayed.frames.items()},
            "players": {player: {key: record.get(key) for key in STEP_FIELDS}
                        for player, record in replayed.records.items()},
            "facts": replayed.facts,
        })
    return {"cell": path.name, "episode": replay.episode, "steps": steps,
            "mismatches": mismatches, "multi_agent": len(steps[0]["frames"]) > 1}


def best_and_worst(rows: list[dict]) -> list[int]:
    """The indexes of a cell's best and worst finished episode (by progression, then
    fewer steps for the best); one index when they are the same episode."""
    done = [row for row in rows if not row.get("failed")]
    if not done:
        return []
    def rank(row: dict) -> tuple[float, float]:  # a damaged record's missing numbers: 0
        return row["progression"] or 0.0, -(row["num_steps"] or 0)

    best, worst = max(done, key=rank), min(done, key=rank)
    return list(dict.fromkeys((best["episode_index"], worst["episode_index"])))
