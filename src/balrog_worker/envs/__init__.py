"""Registry of game families and their tasks.

Task lists are plain data so that listing and validating ids never imports a simulator;
a family's module is imported only when one of its games is made.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass

from balrog_worker.envs.base import Game, Observation, StepOutcome

__all__ = ["FAMILIES", "Game", "Observation", "StepOutcome", "check_env_task", "env_ids", "make"]


@dataclass(frozen=True)
class Family:
    name: str
    tasks: tuple[str, ...]
    factory: str  # "module:callable", called with the task id

    def load(self):
        module_name, attr = self.factory.split(":")
        with warnings.catch_warnings():
            # pygame (pulled in by minigrid) warns about pkg_resources on import.
            warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
            module = importlib.import_module(module_name)
        return getattr(module, attr)


FAMILIES: dict[str, Family] = {
    "babyai": Family(
        "babyai",
        ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to"),
        "balrog_worker.envs.babyai:BabyAIGame",
    ),
}


def env_ids() -> list[str]:
    """Every available ``env/task`` id."""
    return [f"{family.name}/{task}" for family in FAMILIES.values() for task in family.tasks]


def check_env_task(env: str, task: str) -> None:
    """Raise ValueError with a one-line message if ``env/task`` is not available."""
    if env not in FAMILIES:
        raise ValueError(f"unknown env {env!r}; available: {', '.join(FAMILIES)}")
    tasks = FAMILIES[env].tasks
    if task not in tasks:
        raise ValueError(f"unknown task {task!r} for env {env!r}; available: {', '.join(tasks)}")


def make(env: str, task: str) -> Game:
    """A fresh game of ``env/task``."""
    check_env_task(env, task)
    return FAMILIES[env].load()(task)
