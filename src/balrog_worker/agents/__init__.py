"""Agents by name: adding one is a module and an entry here."""

from __future__ import annotations

import functools

from balrog_worker import envs
from balrog_worker.agents.base import Agent, Decision, invalid_action_note
from balrog_worker.agents.cot import CoTAgent
from balrog_worker.agents.demonstrations import (
    Demonstration,
    demonstration_seeds,
    scripted_demonstration,
)
from balrog_worker.agents.few_shot import FewShotAgent
from balrog_worker.agents.naive import NaiveAgent
from balrog_worker.agents.planner import PlannerAgent
from balrog_worker.agents.robust_cot import RobustCoTAgent
from balrog_worker.agents.robust_naive import RobustNaiveAgent
from balrog_worker.clients.base import Client
from balrog_worker.config import MAX_EPISODES, CellConfig
from balrog_worker.seeding import episode_seed

AGENTS: dict[str, type[Agent]] = {  # keyed as vocab.AGENT_TYPES
    "naive": NaiveAgent,
    "robust_naive": RobustNaiveAgent,
    "cot": CoTAgent,
    "robust_cot": RobustCoTAgent,
    "few_shot": FewShotAgent,
    "planner": PlannerAgent,
}


@functools.cache
def _playable_seeds(base_seed: int, env: str, task: str) -> frozenset[int]:
    """Every seed a cell of ``env/task`` can play under ``base_seed``, whatever its
    episode count: demonstrations avoid all of them."""
    return frozenset(episode_seed(base_seed, env, task, i) for i in range(MAX_EPISODES))


def demonstrations_for(config: CellConfig) -> tuple[Demonstration, ...]:
    """The few-shot demonstrations of a cell: its game played by the scripted expert on
    seeds no cell of that game plays or, where a task is a fixed set of games (BALROG's
    TextWorld), on games this cell does not play."""
    cell, agent = config.cell, config.agent
    family = envs.FAMILIES[cell.env]
    if family.fixed_games:
        played = frozenset(family.game_of(episode_seed(config.seed, cell.env, cell.task, i))
                           for i in range(config.episodes))
    else:
        played = _playable_seeds(config.seed, cell.env, cell.task)
    seeds = demonstration_seeds(config.seed, cell.env, cell.task, agent.icl_episodes, played,
                                family.game_of)
    return tuple(scripted_demonstration(cell.env, cell.task, seed) for seed in seeds)


def make_agent(config: CellConfig, client: Client, instructions: str,
               player: str = "agent_0", format_text: str | None = None) -> Agent:
    """The cell's agent for one player of one episode (``format_text``: the answer-format
    text to ask with instead of the agent's own, BALROG's where it asks in its words)."""
    kind = AGENTS[config.agent.type]
    extra = ({"demonstrations": demonstrations_for(config)} if kind is FewShotAgent else {})
    return kind(config.agent, client, instructions, player=player,
                env_task=(config.cell.env, config.cell.task), format_text=format_text,
                **extra)


__all__ = ["AGENTS", "Agent", "Decision", "Demonstration", "demonstrations_for",
           "invalid_action_note", "make_agent"]
