"""What the episode viewer shows, as JSON, read lazily from a results tree.

Three levels, each read only when asked for: the grid (one small ``summary.json`` per
cell, never a steps file), a cell's episodes (its ``episodes.jsonl``), and one episode
step by step (its step records, with frames rendered by replaying the game). The server
answers these at ``data/...`` paths, and the static export writes the same files there,
so the page is the same in both.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

from balrog_worker.replay import Replay
from balrog_worker.store import EPISODES, SUMMARY, read_jsonl

SLUG = re.compile(r"^[A-Za-z0-9._-]+$")  # a cell directory's name (Cell.slug)
EPISODE_FIELDS = ("episode_index", "seed", "num_steps", "progression", "end_reason",
                  "success", "invalid_actions", "llm_calls", "input_tokens", "output_tokens",
                  "cost_usd", "failed", "error")
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
                with open(os.path.join(entry.path, SUMMARY), encoding="utf-8") as file:
                    summary = json.load(file)
            except (FileNotFoundError, json.JSONDecodeError):
                continue  # not a cell, or one still running
            aggregate = summary.get("aggregate", {})
            rows.append({
                "slug": entry.name, **summary.get("cell", {}),
                "episodes": aggregate.get("episodes", 0),
                "progression": aggregate.get("progression"),
                "progression_se": aggregate.get("progression_se"),
                "failed": aggregate.get("failed_episodes", 0),
                "cost_usd": aggregate.get("cost_usd", 0.0),
            })
    rows.sort(key=lambda row: row["slug"])
    return rows


def episodes(path: Path) -> list[dict]:
    """A cell's episodes, in order (failed ones too: the viewer says why)."""
    records, _ = read_jsonl(path / EPISODES)
    rows = [{key: record.get(key) for key in EPISODE_FIELDS} for record in records]
    return sorted(rows, key=lambda row: row["episode_index"])


def png_url(frame) -> str:
    from balrog_worker.clients.images import encode_png

    return "data:image/png;base64," + base64.b64encode(encode_png(frame)).decode()


def episode(path: Path, index: int) -> dict:
    """Episode ``index`` step by step: what each player was shown and did, its frames
    (replayed), the game's facts after each step, and any disagreement of the replay
    with the records."""
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
    best = max(done, key=lambda r: (r["progression"] or 0.0, -r["num_steps"]))
    worst = min(done, key=lambda r: (r["progression"] or 0.0, -r["num_steps"]))
    return list(dict.fromkeys((best["episode_index"], worst["episode_index"])))
