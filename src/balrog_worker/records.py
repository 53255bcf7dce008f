"""The step and episode records: one typed definition each.

The episode loop writes them (``to_dict``), the store commits them as JSON lines, and
the analysis reads them back with a polars schema derived from these same types
(``polars_schema``), so writer and reader cannot drift apart. Every record carries the
cell's keys. Game facts (a BabyAI mission, Crafter's achievements, MultiGrid's result
and coordination metrics) ride along on the episode record; the typed ones the analysis
reads are declared in ``GameFacts``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field

import polars as pl


def is_count(value: object) -> bool:
    """Whether a value read from a record is a whole number >= 0 (an index, a seed, a step
    count; JSON's true and false are not numbers here)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: object) -> bool:
    """Whether a value read from a record is a number (not true or false)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_finite(value: object) -> bool:
    """Whether a value read from a record is a finite number (not NaN, not infinite)."""
    return is_number(value) and math.isfinite(value)


USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
                "retries", "cost_usd")


@dataclass(frozen=True)
class CellKeys:
    run_id: str
    model: str
    agent: str
    env: str
    task: str
    coordination_level: int | None = None
    observation_mode: str | None = None


@dataclass(frozen=True)
class Usage:
    """One model call's (or an episode's) token usage and cost."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0
    retries: int = 0
    cost_usd: float = 0.0

    def __add__(self, other: Usage) -> Usage:
        return Usage(**{name: getattr(self, name) + getattr(other, name)
                        for name in USAGE_FIELDS})


@dataclass(frozen=True)
class StepRecord:
    """One player's step: what the model was shown, what it answered, what was played."""

    keys: CellKeys
    episode_index: int
    step: int
    agent_id: str
    observation: str  # the current observation's message exactly as the model received it
    completion: str
    reasoning: str | None
    candidate: str  # the action the answer names (may be invalid)
    action: str  # the action played: the default one when the candidate is invalid
    valid: bool
    reward: float
    terminated: bool
    truncated: bool
    usage: Usage
    latency_s: float
    answer_truncated: bool = False  # the answer passed max_answer_chars and was cut
    # Who answered: the model's name and its side ("focal": the cell's model; "opponent":
    # the model driving the other team). The cell's keys name the cell's model only.
    answered_by: str | None = None
    side: str | None = None

    def to_dict(self) -> dict:
        return _flat(self)


FOCAL, OPPONENT = "focal", "opponent"  # a step record's side

CANDIDATE_CHARS = 256  # no action name is longer; an invalid answer is in `completion`


def recorded_candidate(candidate: str) -> str:
    """The candidate as a step record keeps it: an invalid answer is often the whole
    completion, which the record holds already, so it is not stored twice."""
    if len(candidate) <= CANDIDATE_CHARS:
        return candidate
    return candidate[:CANDIDATE_CHARS] + "..."


@dataclass(frozen=True)
class EpisodeRecord:
    """One episode of a cell, committed after its steps; a failed one says why."""

    keys: CellKeys
    episode_index: int
    seed: int
    num_steps: int
    llm_calls: int
    usage: Usage
    end_reason: str  # success, terminated, truncated, max_steps, error
    duration_s: float = 0.0
    # What a played episode scored (None on a failed one: it is played again on rerun).
    episode_return: float | None = None
    progression: float | None = None
    success: bool | None = None
    invalid_actions: int | None = None
    terminated: bool | None = None
    truncated: bool | None = None
    failed: bool = False
    error: str | None = None
    answer_parsing: str | None = None
    prompt_wording: str | None = None  # whose words the model was asked in (vocab)
    facts: dict = field(default_factory=dict)  # the game's own facts, see GameFacts

    def to_dict(self) -> dict:
        return _flat(self)


@dataclass(frozen=True)
class GameFacts:
    """The game facts the analysis reads, typed (all optional: most games have none)."""

    # MultiGrid Soccer and Collect
    opponent: str | None = None
    outcome: str | None = None
    goals_for: int | None = None
    goals_against: int | None = None
    possession_share: float | None = None
    passes: int | None = None
    steals: int | None = None
    steals_against: int | None = None
    both_chasing_rate: float | None = None
    mean_teammate_distance: float | None = None
    role_adherence: float | None = None
    balls_total: int | None = None
    balls_collected: int | None = None
    contested_rate: float | None = None


@dataclass(frozen=True)
class PublishedFacts:
    """What an episode imported from BALROG's leaderboard carries (balrog_import.py):
    the submission it was published in, and what is known of the protocol it played.
    Episodes of this project's runs have neither."""

    published: str | None = None
    protocol_notes: str | None = None


def _flat(record) -> dict:
    """A record as the flat JSON object stored: keys, usage and facts inlined."""
    out: dict = {}
    for name, value in vars(record).items():
        if name in ("keys", "usage", "facts"):
            out.update(value if name == "facts" else vars(value))
        else:
            out[name] = value
    if "cost_usd" in out:
        out["cost_usd"] = round(out["cost_usd"], 8)
    return out


_POLARS = {str: pl.String, int: pl.Int64, float: pl.Float64, bool: pl.Boolean}


def polars_schema(cls, *, skip: tuple[str, ...] = ()) -> dict[str, pl.DataType]:
    """The flat polars schema of a record class: its scalar fields, nested keys and usage
    inlined; ``skip`` leaves fields out (free text the analysis never reads)."""
    hints = typing.get_type_hints(cls)
    schema: dict[str, pl.DataType] = {}
    for item in dataclasses.fields(cls):
        kind = hints[item.name]
        if item.name in skip or item.name == "facts":
            continue
        if dataclasses.is_dataclass(kind):
            schema.update(polars_schema(kind))
            continue
        if isinstance(kind, types.UnionType):  # X | None
            kind = next(k for k in typing.get_args(kind) if k is not type(None))
        schema[item.name] = _POLARS[kind]
    return schema


def game_fact_names() -> tuple[str, ...]:
    return tuple(item.name for item in dataclasses.fields(GameFacts))
