"""BALROG's leaderboard format (the balrog-ai/experiments repository): facts about it,
shared by the importer and the exporter.

A submission is a folder ``submissions/{LLM,VLM}/<date>_<agent>_<model>/`` holding, per
environment, ``<env>/<task>/<task>_run_NN.json`` (one episode: task, seed, progression,
num_steps, input_tokens, output_tokens, agent and client settings...) and ``_run_NN.csv``
(its trajectory: Step, Action, Reasoning, Observation, Reward, Done), then
``<env>/<env>_summary.json``, ``summary.json``, ``metadata.yaml`` and a README. Older
submissions publish ``summary.json`` alone.

The arithmetic of the summaries (``summarize``) is the leaderboard's: per environment the
mean progression and its standard error (population deviation over sqrt(N)), in percent;
overall the unweighted mean over environments, with sqrt(sum of SE^2) / number of
environments; the overall SE is not multiplied by 100 again (already in percent).
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from dataclasses import dataclass

# BALROG's environment names -> this project's (and back).
OUR_ENV = {"babyai": "babyai", "babaisai": "babaisai", "crafter": "crafter",
           "minihack": "minihack", "nle": "nethack", "textworld": "textworld"}
THEIR_ENV = {ours: theirs for theirs, ours in OUR_ENV.items()}
EPISODE_FILE = re.compile(r"^(?P<task>.+)_run_(?P<run>\d+)\.json$")
CSV_COLUMNS = ("Step", "Action", "Reasoning", "Observation", "Reward", "Done")
SUMMARY = "summary.json"
METADATA = "metadata.yaml"
# The most bytes read of any one file of a submission (an episode JSON is under 1 MB).
MAX_FILE_BYTES = 32 << 20


@dataclass(frozen=True)
class ProtocolChange:
    """A known change of BALROG's protocol: submissions dated before ``before`` played
    ``env`` otherwise."""

    env: str  # BALROG's name
    before: str  # ISO date
    note: str


KNOWN_CHANGES = (
    ProtocolChange(
        "babyai", "2024-12-10",
        "BabyAI levels may carry up to 8 distractor objects: BALROG's code before "
        "2024-12-10 ignored its own num_dists: 0 (seen replaying the published episodes)"),
)


def protocol_notes(env: str, date: str | None) -> list[str]:
    """What is known to differ from today's protocol for ``env`` (BALROG's name) in a
    submission dated ``date`` (ISO; None: unknown, so every change may apply)."""
    return [change.note for change in KNOWN_CHANGES
            if change.env == env and (date is None or date < change.before)]


def their_task(env: str, task: str) -> str:
    """BALROG's name of this project's ``task`` of ``env`` (our names)."""
    from balrog_worker import envs

    if env == "babyai" and task in envs.FAMILIES["babyai"].tasks:
        return f"BabyAI-MixedTrainLocal-v0/{task}"
    if env == "babaisai":
        return f"env/{task}"
    for gym_id, (family, ours) in envs.GYM_IDS.items():
        if family == env and ours == task and gym_id.startswith(("MiniHack-", "NetHack")):
            return gym_id
    return task


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    if not n:
        return 0.0, 0.0
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0
    deviation = math.sqrt(sum((v - mean) ** 2 for v in values) / n)
    return mean, deviation / math.sqrt(n)


def summarize(episodes: dict[str, list[dict]]) -> tuple[dict[str, dict], dict]:
    """(``<env>_summary.json`` per env, ``summary.json``'s figures) of episode JSONs
    grouped by BALROG's env name, as the leaderboard computes them."""
    per_env, means, ses = {}, [], []
    for env, runs in episodes.items():
        mean, se = _mean_and_se([run.get("progression", 0.0) for run in runs])
        tasks = defaultdict(list)
        for run in runs:
            tasks[run.get("task")].append(run.get("progression", 0.0))
        task_figures = {task: (_mean_and_se(values), len(values))
                        for task, values in tasks.items()}
        per_env[env] = {
            "progression_percentage": 100 * mean,
            "standard_error": 100 * se,
            "average_steps": (sum(run.get("num_steps", 0) for run in runs) / len(runs)
                              if runs else 0.0),
            "episodes_played": len(runs),
            "tasks": {task: {"progression_percentage": 100 * task_mean,
                             "standard_error": 100 * task_se, "episodes_played": n}
                      for task, ((task_mean, task_se), n) in task_figures.items()},
            "input_tokens": sum(run.get("input_tokens", 0) for run in runs),
            "output_tokens": sum(run.get("output_tokens", 0) for run in runs),
        }
        means.append(mean)
        ses.append(100 * se)
    overall = {
        "average_progress": 100 * sum(means) / len(means) if means else 0.0,
        "standard_error": math.sqrt(sum(se ** 2 for se in ses)) / len(ses) if ses else 0.0,
        "environments": {env: {key: summary[key] for key in (
            "progression_percentage", "standard_error", "episodes_played")}
            for env, summary in per_env.items()},
        "total_input_tokens": sum(s["input_tokens"] for s in per_env.values()),
        "total_output_tokens": sum(s["output_tokens"] for s in per_env.values()),
    }
    return per_env, overall
