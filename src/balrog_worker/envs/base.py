"""The small protocol every game speaks to the harness.

A game turns the simulator's state into text (and optionally an RGB frame), takes actions
as strings from a fixed vocabulary, and reports BALROG's progression score in [0, 1].
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
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

    def mission(self) -> str | None:
        """The current episode's goal in the game's own words, where it has one (BabyAI):
        BALROG's instructions are built around it."""
        return None

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

    def display(self) -> np.ndarray:
        """The scene as a person watching the game sees it (MOSAIC's operator panel):
        the agent's own frame unless the game draws more."""
        return self.frame()

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


class LazyActions(Sequence[str]):
    """A game's valid actions, listed when first read. Most agents never read them (an
    answer is checked with ``is_valid``), and listing them can cost: TextWorld derives
    them from a second copy of the game."""

    def __init__(self, list_them: Callable[[], Iterable[str]]):
        self._list_them = list_them
        self._items: tuple[str, ...] | None = None

    def _all(self) -> tuple[str, ...]:
        if self._items is None:
            self._items = tuple(self._list_them())
        return self._items

    def __len__(self) -> int:
        return len(self._all())

    def __getitem__(self, index):  # type: ignore[override]
        return self._all()[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __contains__(self, action: object) -> bool:
        return action in self._all()

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __hash__(self) -> int:
        return hash(self._all())

    def __repr__(self) -> str:
        return f"LazyActions({self._items!r})" if self._items is not None else "LazyActions(…)"


@dataclass(frozen=True)
class Turn:
    """One step of a game as its players see it: each acting player's next observation
    and reward, and whether the episode is over."""

    observations: dict[str, Observation]
    rewards: dict[str, float]
    terminated: bool
    truncated: bool


class PlayerGame(ABC):
    """The protocol the episode loop drives: a game of one or more players, each acting
    player answering with an action string each step. Policies that are part of the game
    (Soccer's other team) play inside it."""

    family: str
    task: str
    players: tuple[str, ...]  # the players agents drive, e.g. ("agent_0",)

    @property
    def focal(self) -> tuple[str, ...]:
        """The players the cell is scored on (all of them, unless a second model drives
        the other side)."""
        return self.players

    @abstractmethod
    def reset(self, seed: int) -> dict[str, Observation]: ...

    @abstractmethod
    def step(self, actions: dict[str, str]) -> Turn:
        """Play one valid action per player (see ``is_valid``)."""

    @abstractmethod
    def instructions(self, player: str) -> str: ...

    def mission(self, player: str) -> str | None:
        return None

    @abstractmethod
    def actions(self, player: str) -> tuple[str, ...]:
        """The valid actions of ``player`` now."""

    @abstractmethod
    def default_action(self, player: str) -> str: ...

    @abstractmethod
    def is_valid(self, player: str, action: str) -> bool: ...

    @abstractmethod
    def progression(self) -> float: ...

    @abstractmethod
    def frame(self, player: str) -> np.ndarray:
        """What ``player`` sees, as an RGB frame, for vision-language agents."""

    def display(self) -> np.ndarray:
        """The whole scene as a person watching the game sees it (MOSAIC's panel)."""
        return self.frame(self.players[0])

    def oracle_action(self, player: str) -> str:
        raise NotImplementedError(f"{self.family} has no scripted oracle")

    def call_key(self, player: str) -> object:
        """The player's part of its model calls' seeds (stable across versions)."""
        return player

    def episode_info(self) -> dict:
        return {}

    def close(self) -> None:  # noqa: B027 - most games hold nothing to release
        pass


class SoloGame(PlayerGame):
    """A one-player ``Game`` spoken through the players' protocol."""

    PLAYER = "agent_0"
    players = (PLAYER,)

    def __init__(self, game: Game):
        self.game = game
        self.family, self.task = game.family, game.task

    def reset(self, seed: int) -> dict[str, Observation]:
        return {self.PLAYER: self.game.reset(seed)}

    def step(self, actions: dict[str, str]) -> Turn:
        outcome = self.game.step(actions[self.PLAYER])
        return Turn({self.PLAYER: outcome.observation}, {self.PLAYER: outcome.reward},
                    outcome.terminated, outcome.truncated)

    def instructions(self, player: str) -> str:
        return self.game.instructions()

    def mission(self, player: str) -> str | None:
        return self.game.mission()

    def actions(self, player: str) -> tuple[str, ...]:
        return tuple(self.game.actions)

    def default_action(self, player: str) -> str:
        return self.game.default_action

    def is_valid(self, player: str, action: str) -> bool:
        return self.game.is_valid(action)

    def progression(self) -> float:
        return self.game.progression()

    def frame(self, player: str) -> np.ndarray:
        return self.game.frame()

    def display(self) -> np.ndarray:
        return self.game.display()

    def oracle_action(self, player: str) -> str:
        return self.game.oracle_action()

    def episode_info(self) -> dict:
        return self.game.episode_info()

    def close(self) -> None:
        self.game.close()
