"""Agents by name: adding one is a module and an entry here."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.naive import NaiveAgent

AGENTS: dict[str, type[Agent]] = {
    "naive": NaiveAgent,
}

__all__ = ["AGENTS", "Agent", "Decision"]
