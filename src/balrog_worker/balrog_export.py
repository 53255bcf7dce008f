"""``export-balrog``: a run as a submission to BALROG's leaderboard.

One model x agent of a results tree becomes a submission folder in BALROG's layout
(balrog_format): per episode ``<env>/<task>/<task>_run_NN.json`` (task, seed,
progression, num_steps, tokens, episode_return, the played actions' counts, the invalid
answers, and the agent's and client's settings) and ``_run_NN.csv`` (Step, Action,
Reasoning, Observation, Reward, Done: the answer at each step and the observation after
it), then ``<env>/<env>_summary.json`` and ``summary.json`` as the leaderboard computes
them, and a ``metadata.yaml`` and ``README.md`` for the submitter to fill in. BALROG's
``submit.py`` run on the folder recomputes the same figures.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from balrog_worker import documents, envs
from balrog_worker.balrog_format import CSV_COLUMNS, METADATA, SUMMARY, THEIR_ENV, summarize
from balrog_worker.balrog_format import their_task as balrog_task
from balrog_worker.records import is_count, is_finite
from balrog_worker.store import EPISODES, STEPS, committed, read_jsonl
from balrog_worker.store import SUMMARY as CELL_SUMMARY
from balrog_worker.vocab import BALROG_ENVS

log = logging.getLogger(__name__)


class ExportError(ValueError):
    """The run cannot be exported as asked (one line)."""


@dataclass
class ExportReport:
    episodes: int = 0
    envs: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _cells(results: Path) -> list[tuple[Path, dict]]:
    """Every cell of the results tree with a readable summary.json, and that summary."""
    cells = []
    for path in sorted(results.rglob(CELL_SUMMARY)):
        if not path.is_file() or not (path.parent / EPISODES).is_file():
            continue
        try:
            summary = documents.load_json(documents.read_text(path, limit=1 << 20))
        except documents.DocumentError as error:
            log.warning("%s: not read (%s); its cell is not exported", path, error)
            continue
        if isinstance(summary, dict) and isinstance(summary.get("cell"), dict):
            cells.append((path.parent, summary))
    return cells


def export_submission(results: Path, out: Path, *, model: str | None = None,
                      agent: str | None = None) -> ExportReport:
    """Write the cells of one model x agent under ``results`` (of BALROG's environments)
    as a submission folder ``out``; ExportError (one line) before writing anything when
    the run is not one row or the folder would overwrite files."""
    rows: dict[tuple[str, str], list[tuple[Path, dict]]] = defaultdict(list)
    report = ExportReport()
    for directory, summary in _cells(results):
        keys = summary["cell"]
        if "imported" in summary:
            continue  # published rows are BALROG's already
        env, task = keys.get("env"), keys.get("task")
        if env not in BALROG_ENVS or not isinstance(task, str):
            report.skipped.append(f"{directory.name}: {env} is not one of BALROG's games")
            continue
        try:
            envs.check_env_task(env, task)
        except ValueError as error:
            report.skipped.append(f"{directory.name}: {error}")
            continue
        rows[(str(keys.get("model")), str(keys.get("agent")))].append((directory, summary))
    chosen = [row for row in rows if (model is None or row[0] == model)
              and (agent is None or row[1] == agent)]
    if not chosen:
        raise ExportError(f"{results}: no cell of BALROG's games"
                          + (f" for --model {model!r} --agent {agent!r}" if model or agent
                             else ""))
    if len(chosen) > 1:
        raise ExportError("a submission is one model and one agent; choose with --model "
                          "and --agent among: " + ", ".join(f"{m} / {a}" for m, a in chosen))
    if out.exists() and any(out.iterdir()):
        raise ExportError(f"{out}: not empty (a submission folder is written whole)")
    (model_name, agent_name), = chosen
    by_env: dict[str, list[dict]] = defaultdict(list)
    settings: dict = {}
    for directory, summary in rows[chosen[0]]:
        settings = settings or _settings(summary)
        env = THEIR_ENV[summary["cell"]["env"]]
        task = balrog_task(summary["cell"]["env"], summary["cell"]["task"])
        for episode in _write_episodes(directory, out / env, task, settings, report):
            by_env[env].append(episode)
    per_env, overall = summarize(by_env)
    for env, env_summary in per_env.items():
        (out / env / f"{env}_summary.json").write_text(json.dumps(env_summary, indent=4))
    overall = {**overall, "client": settings.get("client"), "agent": settings.get("agent")}
    (out / SUMMARY).write_text(json.dumps(overall, indent=4))
    (out / METADATA).write_text(_metadata(model_name))
    (out / "README.md").write_text(_readme(model_name, agent_name))
    report.envs = sorted(per_env)
    report.summary = overall
    return report


def _settings(summary: dict) -> dict:
    """The agent and client settings BALROG's episode JSONs carry, from a cell summary."""
    model = summary.get("model") if isinstance(summary.get("model"), dict) else {}
    agent = summary.get("agent") if isinstance(summary.get("agent"), dict) else {}
    generation = model.get("generation") if isinstance(model.get("generation"), dict) else {}
    return {
        "agent": {"type": agent.get("type"), "max_history": agent.get("max_text_history"),
                  "max_image_history": agent.get("max_image_history")},
        "client": {"client_name": model.get("backend"),
                   "model_id": model.get("model") or model.get("name"),
                   "generate_kwargs": {k: generation.get(k)
                                       for k in ("temperature", "max_tokens")}},
    }


def _write_episodes(directory: Path, env_dir: Path, task: str, settings: dict,
                    report: ExportReport) -> list[dict]:
    episodes, _ = read_jsonl(directory / EPISODES)
    steps, _ = read_jsonl(directory / STEPS) if (directory / STEPS).is_file() else ([], 0)
    by_episode: dict[int, list[dict]] = defaultdict(list)
    for step in steps:
        if is_count(step.get("episode_index")) and is_count(step.get("step")):
            by_episode[step["episode_index"]].append(step)
    folder = env_dir / task
    if not folder.resolve().is_relative_to(env_dir.resolve()):
        raise ExportError(f"{directory.name}: task {task!r} names a folder outside the "
                          "submission")
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for index, episode in sorted(committed(episodes).items()):
        if not is_finite(episode.get("progression")):
            report.skipped.append(f"{directory.name} episode {index}: no progression")
            continue
        played = sorted(by_episode.get(index, []), key=lambda s: s["step"])
        data = {
            "task": task,
            "action_frequency": dict(Counter(str(s.get("action")) for s in played)),
            "input_tokens": episode.get("input_tokens", 0),
            "output_tokens": episode.get("output_tokens", 0),
            "done": True,
            "episode_return": episode.get("episode_return"),
            "num_steps": episode.get("num_steps", 0),
            "failed_candidates": [str(s.get("completion", "")) for s in played
                                  if s.get("valid") is False],
            "progression": episode["progression"],
            "seed": episode.get("seed"),
            **settings,
        }
        stem = folder / task  # BALROG's: <env>/<task>/<task>_run_NN (a task may hold a /)
        stem.parent.mkdir(parents=True, exist_ok=True)
        Path(f"{stem}_run_{index:02d}.json").write_text(json.dumps(data, indent=4))
        Path(f"{stem}_run_{index:02d}.csv").write_text(_trajectory(played))
        written.append(data)
        report.episodes += 1
    return written


def _trajectory(steps: list[dict]) -> str:
    """BALROG's CSV of an episode: each step's answer and the observation after it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for position, step in enumerate(steps):
        after = steps[position + 1].get("observation", "") if position + 1 < len(steps) else ""
        done = step.get("terminated") is True or position + 1 == len(steps)
        writer.writerow([step["step"], step.get("completion", ""), step.get("reasoning") or "",
                         after, step.get("reward", 0.0), done])
    return buffer.getvalue()


def _metadata(model: str) -> str:
    return (f"name: {json.dumps(model)}  # the name the leaderboard shows\n"
            "oss: false  # are the model's weights public?\n"
            "site: null  # a page about the model or the submission\n"
            "verified: false  # set by BALROG's maintainers\n"
            "org_logo: null\n"
            "trajs: true\n"
            f'date: "{date.today().isoformat()}"\n')


def _readme(model: str, agent: str) -> str:
    return (f"# {agent} agent, {model}\n\n"
            "Exported by balrog-worker (`balrog-worker export-balrog`). Describe the agent "
            "and how to reproduce the run here: the model and its settings, the agent, and "
            "any way in which the run differs from BALROG's own evaluation (see "
            "docs/protocol.md of balrog-worker, 'What differs from BALROG').\n")
