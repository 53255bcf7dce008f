"""The small protocol every game speaks to the harness.

A game turns the simulator's state into text (and optionally an RGB frame), takes actions
as strings from a fixed vocabulary, and reports BALROG's progression score in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Observation:
    """What the agent is shown at one step.

    ``text`` is long-term: it enters the history. ``context`` is short-term (inventory,
    status): shown with the current observation only, as BALROG does.
    """

    text: str
    context: str = ""
    image: np.ndarray | None = field(default=None, repr=False, compare=False)


@dataclass(frozen=True)
class StepOutcome:
    observation: Observation
    reward: float
    terminated: bool
    truncated: bool


class Game(ABC):
    """One environment instance playing one task; reset for each episode."""

    family: str
    task: str
    default_action: str

    @property
    @abstractmethod
    def actions(self) -> dict[str, str]:
        """Valid action strings mapped to a one-line description for the prompt."""

    @abstractmethod
    def instructions(self) -> str:
        """The rules and goal of the current episode, for the system prompt."""

    @abstractmethod
    def reset(self, seed: int) -> Observation: ...

    @abstractmethod
    def step(self, action: str) -> StepOutcome:
        """Play a valid action (see ``is_valid``)."""

    @abstractmethod
    def progression(self) -> float:
        """BALROG's progression of the episode so far, in [0, 1]."""

    @abstractmethod
    def frame(self) -> np.ndarray:
        """The current RGB frame (H x W x 3, uint8), for vision-language agents."""

    def is_valid(self, action: str) -> bool:
        return action in self.actions

    def oracle_action(self) -> str:
        """The next action of a scripted expert, for the ``scripted`` baseline."""
        raise NotImplementedError(f"{self.family} has no scripted oracle")

    def episode_info(self) -> dict:
        """Game-specific fields added to the episode record (e.g. achievements)."""
        return {}

    def close(self) -> None:  # noqa: B027 - most games hold nothing to release
        pass
