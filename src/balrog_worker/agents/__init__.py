"""Agents by name: adding one is a module and an entry here."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.cot import CoTAgent
from balrog_worker.agents.few_shot import FewShotAgent
from balrog_worker.agents.naive import NaiveAgent
from balrog_worker.agents.planner import PlannerAgent
from balrog_worker.agents.robust_cot import RobustCoTAgent
from balrog_worker.agents.robust_naive import RobustNaiveAgent

AGENTS: dict[str, type[Agent]] = {
    "naive": NaiveAgent,
    "robust_naive": RobustNaiveAgent,
    "cot": CoTAgent,
    "robust_cot": RobustCoTAgent,
    "few_shot": FewShotAgent,
    "planner": PlannerAgent,
}

__all__ = ["AGENTS", "Agent", "Decision"]
