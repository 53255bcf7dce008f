"""``import-balrog``: BALROG's published submissions as this project's results.

Each submission folder (balrog_format describes the layout) becomes, per task, a cell of
this project's records: one episode record per published episode JSON, step records from
its CSV where there is one, and a ``summary.json`` that says where the cell came from
(``imported``: submission, leaderboard, model, agent, client settings, date, a digest of
the files read, and what is known of the protocol it played). ``aggregate``, ``report``
and the figures then treat them as cells; their rows are marked as published. A
submission that publishes only ``summary.json`` becomes a reference row
(``published/<submission>.json``), with its published figures as they are.

Everything is untrusted input: files are read with a size cap, links and other
non-regular files are skipped, every field is checked, and anything unusable is skipped
with one line saying why.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path

from balrog_worker import documents, envs
from balrog_worker.analysis.stats import cell_aggregate
from balrog_worker.balrog_format import (
    EPISODE_FILE,
    MAX_FILE_BYTES,
    METADATA,
    OUR_ENV,
    SUMMARY,
    protocol_notes,
)
from balrog_worker.cells import Cell
from balrog_worker.records import is_count, is_finite
from balrog_worker.store import EPISODES, STEPS, json_line
from balrog_worker.store import SUMMARY as CELL_SUMMARY
from balrog_worker.vocab import BALROG_WORDING

log = logging.getLogger(__name__)

PUBLISHED = "published"  # the folder of summary-only reference rows, under --out
IMPORTED_WORDING = f"{BALROG_WORDING}@published"  # BALROG's own prompts
_INVALID = re.compile(r"is not a valid action\. Defaulted to action: (?P<action>[^\n]*)")
MAX_COUNT = 2**63 - 1  # the records' whole numbers are 64-bit
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})_")


class SubmissionError(ValueError):
    """A submission cannot be imported at all (said in one line)."""


@dataclass
class ImportReport:
    cells: int = 0
    episodes: int = 0
    steps: int = 0
    reference_rows: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # one line each: what and why

    def skip(self, what: str, why: str) -> None:
        line = f"{what}: {why}"
        self.skipped.append(line)
        log.warning("skipped %s", line)


def _read(path: Path) -> str:
    return documents.read_text(path, limit=MAX_FILE_BYTES)


def _date_of(folder: Path, metadata: dict) -> str | None:
    value = metadata.get("date")
    if isinstance(value, Date):
        return value.isoformat()
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return value
    match = _DATE.match(folder.name)
    return "-".join(match.groups()) if match else None


def _text(value: object, limit: int = 200) -> str | None:
    """A name from the submission's files, fit for a table cell: one line of printable
    text without the characters that shape a markdown table (None where there is none)."""
    if not isinstance(value, str):
        return None
    text = re.sub(r"[\s|`]+", " ", "".join(c for c in value if c.isprintable() or c.isspace()))
    return text.strip()[:limit] or None


def _json_files(directory: Path) -> list[Path]:
    """The .json files below ``directory``, sorted; links (to files or folders) are not
    followed, so nothing outside the submission is read."""
    found = []
    for root, folders, files in os.walk(directory, followlinks=False):
        folders.sort()
        found += [Path(root) / name for name in files if name.endswith(".json")]
    return sorted(found)


def _metadata(folder: Path, report: ImportReport) -> dict:
    path = folder / METADATA
    if not path.is_file():
        return {}
    try:
        data = documents.load_yaml(_read(path))
    except documents.DocumentError as error:
        report.skip(str(path), f"not read ({error}); the folder's name is used instead")
        return {}
    return data if isinstance(data, dict) else {}


def import_submissions(folders: list[Path], out: Path) -> ImportReport:
    """Import every submission folder in ``folders`` into ``out``; raises SubmissionError
    (one line) before writing anything when a folder is not a submission."""
    for folder in folders:
        if not folder.is_dir():
            raise SubmissionError(f"{folder}: not a folder")
        if not (folder / SUMMARY).is_file() and not any(
                (folder / env).is_dir() for env in OUR_ENV):
            raise SubmissionError(f"{folder}: not a BALROG submission (no {SUMMARY} and "
                                  f"no environment folder: {', '.join(OUR_ENV)})")
    out.mkdir(parents=True, exist_ok=True)
    report = ImportReport()
    for folder in folders:
        _import_one(folder.resolve(), out, report)
    return report


def _import_one(folder: Path, out: Path, report: ImportReport) -> None:
    metadata = _metadata(folder, report)
    date = _date_of(folder, metadata)
    board = folder.parent.name if folder.parent.name in ("LLM", "VLM") else None
    digest = hashlib.sha256()
    runs: dict[tuple[str, str], list[tuple[int, dict, Path]]] = defaultdict(list)
    for env_dir in sorted(folder.iterdir()):
        if env_dir.name not in OUR_ENV or env_dir.is_symlink() or not env_dir.is_dir():
            continue
        for path in _json_files(env_dir):
            if path.name.endswith("_summary.json"):
                continue
            read = _episode_json(path, folder, report)
            if read is None:
                continue
            episode, text = read
            digest.update(path.relative_to(folder).as_posix().encode())
            digest.update(text.encode())
            run = int(EPISODE_FILE.match(path.name).group("run"))
            runs[(env_dir.name, episode["task"])].append((run, episode, path))
    if not runs:
        _reference_row(folder, out, metadata, date, board, report)
        return
    first = next(iter(runs.values()))[0][1]
    agent = first.get("agent") if isinstance(first.get("agent"), dict) else {}
    client = first.get("client") if isinstance(first.get("client"), dict) else {}
    name, model = _row_name(folder, metadata, client, date, board)
    agent_type = _text(agent.get("type"), 40) or "unknown"
    imported = {
        "source": "balrog-ai/experiments", "submission": folder.name, "leaderboard": board,
        "name": name, "date": date, "model_id": _text(client.get("model_id")),
        "agent": {k: v for k, v in agent.items() if isinstance(v, (str, int, float, bool))},
        # the client's settings, less its base_url (an address, perhaps with credentials)
        "client": {k: v for k, v in client.items()
                   if k != "base_url" and isinstance(v, (str, int, float, bool, dict))},
        "files_sha256": digest.hexdigest(),
    }
    for (their_env, their_task), episodes in sorted(runs.items()):
        _write_cell(folder, out, model, agent_type, their_env, their_task, episodes,
                    {**imported, "protocol_notes": protocol_notes(their_env, date)}, report)


def _episode_json(path: Path, folder: Path,
                  report: ImportReport) -> tuple[dict, str] | None:
    """An episode JSON's checked fields and its text, or None (said why)."""
    where = str(path.relative_to(folder))
    if path.is_symlink() or not EPISODE_FILE.match(path.name):
        report.skip(where, "not an episode file (<task>_run_NN.json)")
        return None
    try:
        text = _read(path)
        data = documents.load_json(text)
    except documents.DocumentError as error:
        report.skip(where, str(error))
        return None
    if not isinstance(data, dict):
        report.skip(where, "not a JSON object")
        return None
    task, progression = data.get("task"), data.get("progression")
    if not isinstance(task, str) or not re.fullmatch(r"[\w./:+ -]{1,200}", task) or not (
            re.search(r"[A-Za-z0-9]", task)):
        report.skip(where, f"task {str(task)[:40]!r} is not a task name")
        return None
    if not is_finite(progression) or not 0 <= progression <= 1:
        report.skip(where, f"progression {str(progression)[:40]!r} is not a number in [0, 1]")
        return None
    for key in ("num_steps", "input_tokens", "output_tokens"):
        if key in data and not (is_count(data[key]) and data[key] <= MAX_COUNT):
            report.skip(where, f"{key} {str(data[key])[:40]!r} is not a whole number up to "
                        f"{MAX_COUNT:,}")
            return None
    return data, text


def _write_cell(folder: Path, out: Path, model: str, agent: str, their_env: str,
                their_task: str, episodes: list[tuple[int, dict, Path]], imported: dict,
                report: ImportReport) -> None:
    env, task = envs.canonical(OUR_ENV[their_env], their_task)
    task = task or their_task
    cell = Cell(model, agent, env, task)
    try:
        directory = out / cell.slug
    except ValueError as error:  # a name with nothing to name a directory by
        report.skip(f"{folder.name}/{their_env}/{their_task}", str(error))
        return
    if (directory / CELL_SUMMARY).is_file():
        try:
            existing = documents.load_json(_read(directory / CELL_SUMMARY))
        except (OSError, documents.DocumentError):
            existing = {}
        imported_from = existing.get("imported") if isinstance(existing, dict) else None
        if not isinstance(imported_from, dict):
            report.skip(f"{folder.name}/{their_env}/{their_task}",
                        f"{directory} holds a run of this project's: not overwritten")
            return
        other = imported_from.get("submission")
        if other != folder.name:
            report.skip(f"{folder.name}/{their_env}/{their_task}",
                        f"{directory} holds submission {str(other)[:80]!r}: not overwritten")
            return
    keys = {"run_id": f"balrog-{folder.name}"[:128], **cell.keys()}
    records, steps, seen = [], [], set()
    for run, data, path in sorted(episodes, key=lambda item: item[0]):
        if run in seen:
            report.skip(str(path.relative_to(folder)), f"a second run {run:02d} of the task")
            continue
        seen.add(run)
        records.append(_episode_record(keys, run, data, imported))
        steps += _step_records(keys, run, path.with_suffix(".csv"), folder, report)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / EPISODES).write_text("".join(map(json_line, records)), encoding="utf-8")
    (directory / STEPS).write_text("".join(map(json_line, steps)), encoding="utf-8")
    summary = {"run_id": keys["run_id"], "cell": cell.keys(), "imported": imported,
               "aggregate": {**cell_aggregate(records), "failed_episodes": 0}}
    (directory / CELL_SUMMARY).write_text(json.dumps(summary, indent=2) + "\n",
                                          encoding="utf-8")
    report.cells += 1
    report.episodes += len(records)
    report.steps += len(steps)


def _episode_record(keys: dict, run: int, data: dict, imported: dict) -> dict:
    progression = float(data["progression"])
    done = data.get("done") is True
    seed = data.get("seed")
    invalid = data.get("failed_candidates")
    return {
        **keys, "episode_index": run, "seed": seed if is_count(seed) else None,
        "num_steps": data.get("num_steps", 0), "llm_calls": data.get("num_steps", 0),
        "input_tokens": data.get("input_tokens", 0),
        "output_tokens": data.get("output_tokens", 0), "cached_input_tokens": 0,
        "reasoning_tokens": 0, "retries": 0, "cost_usd": 0.0,
        "end_reason": "success" if progression >= 1 else ("terminated" if done else "truncated"),
        "duration_s": 0.0,
        "episode_return": (data["episode_return"] if is_finite(data.get("episode_return"))
                           else None),
        "progression": progression, "success": progression >= 1,
        "invalid_actions": len(invalid) if isinstance(invalid, list) else None,
        "terminated": done, "truncated": not done, "failed": False, "error": None,
        "answer_parsing": None, "prompt_wording": IMPORTED_WORDING,
        "published": imported["submission"],
        "protocol_notes": "; ".join(imported["protocol_notes"]) or None,
    }


def _step_records(keys: dict, run: int, path: Path, folder: Path,
                  report: ImportReport) -> list[dict]:
    """Step records from an episode's CSV trajectory, where it has one. BALROG's row k
    holds the answer at step k and the observation after it (where an invalid answer's
    note names the action played instead): the model was shown row k-1's observation."""
    if not path.is_file() or path.is_symlink():
        return []
    where = str(path.relative_to(folder))
    try:
        text = _read(path)
    except documents.DocumentError as error:
        report.skip(where, str(error))
        return []
    csv.field_size_limit(MAX_FILE_BYTES)
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as error:
        report.skip(where, f"not a CSV trajectory ({error})")
        return []
    if rows and not {"Step", "Action", "Observation"} <= set(rows[0]):
        report.skip(where, "no Step, Action and Observation columns")
        return []
    steps, shown = [], ""
    for row in rows:
        try:
            step = int(row["Step"])
            reward = float(row.get("Reward") or 0.0)
        except (TypeError, ValueError):
            report.skip(where, f"row {len(steps)}: Step or Reward is not a number; the "
                        "trajectory is cut there")
            break
        answer = row.get("Action") or ""
        after = row.get("Observation") or ""
        invalid = _INVALID.search(after)
        steps.append({
            **keys, "episode_index": run, "step": step, "agent_id": "agent_0",
            "observation": shown, "completion": answer,
            "reasoning": row.get("Reasoning") or None, "candidate": answer[:256],
            "action": invalid.group("action").strip() if invalid else answer,
            "valid": invalid is None, "reward": reward if math.isfinite(reward) else 0.0,
            "terminated": (row.get("Done") or "").strip() == "True", "truncated": False,
            "input_tokens": 0, "output_tokens": 0, "cached_input_tokens": 0,
            "reasoning_tokens": 0, "retries": 0, "cost_usd": 0.0, "latency_s": 0.0,
        })
        shown = after
    return steps


def _reference_row(folder: Path, out: Path, metadata: dict, date: str | None,
                   board: str | None, report: ImportReport) -> None:
    """A submission with no episode JSON: its published summary as a reference row."""
    path = folder / SUMMARY
    try:
        text = _read(path)
        summary = documents.load_json(text)
    except (FileNotFoundError, documents.DocumentError) as error:
        report.skip(folder.name, f"no episodes and no readable {SUMMARY} ({error})")
        return
    environments = summary.get("environments") if isinstance(summary, dict) else None
    if not isinstance(environments, dict):
        report.skip(folder.name, f"its {SUMMARY} has no environments")
        return
    rows = {}
    for their_env, figures in environments.items():
        if their_env not in OUR_ENV or not isinstance(figures, dict):
            report.skip(f"{folder.name}/{their_env}", "not one of BALROG's environments")
            continue
        mean, se = figures.get("progression_percentage"), figures.get("standard_error")
        if not (is_finite(mean) and is_finite(se)):
            report.skip(f"{folder.name}/{their_env}", "its figures are not numbers")
            continue
        rows[OUR_ENV[their_env]] = {
            "progression": float(mean), "progression_se": float(se),
            "episodes": figures.get("episodes_played") if is_count(
                figures.get("episodes_played")) else None,
            "protocol_notes": protocol_notes(their_env, date)}
    agent = summary.get("agent") if isinstance(summary.get("agent"), dict) else {}
    client = summary.get("client") if isinstance(summary.get("client"), dict) else {}
    _, model = _row_name(folder, metadata, client, date, board)
    row = {"submission": folder.name, "leaderboard": board, "date": date, "model": model,
           "agent": _text(agent.get("type"), 40) or _named(folder.name)[0],
           "environments": rows,
           "published_overall": summary.get("average_progress") if is_finite(
               summary.get("average_progress")) else None,
           "published_overall_se": summary.get("standard_error") if is_finite(
               summary.get("standard_error")) else None,
           "files_sha256": hashlib.sha256(text.encode()).hexdigest()}
    (out / PUBLISHED).mkdir(parents=True, exist_ok=True)
    (out / PUBLISHED / f"{_safe(folder.name)}.json").write_text(
        json.dumps(row, indent=2) + "\n", encoding="utf-8")
    report.reference_rows.append(folder.name)


def _row_name(folder: Path, metadata: dict, client: dict, date: str | None,
              board: str | None) -> tuple[str, str]:
    """(the published name, the leaderboard row's model): the name from metadata.yaml,
    else the client's model id, else the folder's name; the row says the date, and the
    VLM leaderboard (a model's LLM and VLM submissions are two rows)."""
    name = (_text(metadata.get("name")) or _text(client.get("model_id"))
            or _named(folder.name)[1])
    vlm = " VLM" if board == "VLM" else ""
    return name, f"{name} (BALROG{vlm} {date or 'undated'})"


def _named(submission: str) -> tuple[str, str]:
    """(agent, model) of a folder named <date>_<agent>_<model> or <date>_<agent>-<model>
    (the repository's two habits); the folder's name where it is neither."""
    match = re.fullmatch(r"\d{8}_([A-Za-z0-9]+(?:_[a-z]+)?)[_-](.+)", submission)
    return (match[1], match[2]) if match else ("unknown", submission)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")[:120] or "submission"
