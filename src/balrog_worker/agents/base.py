"""What every agent does each step: build a prompt, call the model, parse an action."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from balrog_worker.agents.history import History
from balrog_worker.agents.parsing import match_action
from balrog_worker.clients.base import Client, Completion, Request
from balrog_worker.config import AgentSpec
from balrog_worker.envs.base import Observation


@dataclass(frozen=True)
class Decision:
    completion: Completion
    candidate: str  # the action the answer names (may be invalid)
    reasoning: str | None = None


class Agent(ABC):
    """One player's policy for one episode; holds that episode's history."""

    def __init__(self, spec: AgentSpec, client: Client, instructions: str,
                 player: str = "agent_0"):
        self.spec = spec
        self.client = client
        self.player = player
        self.system_prompt = f"{instructions}\n\n{self.answer_rules()}"
        self.history = History(spec.max_text_history)
        self._pending = ""

    @abstractmethod
    def answer_rules(self) -> str:
        """How the model must format its answer (appended to the instructions)."""

    @abstractmethod
    def answer_reminder(self) -> str:
        """A one-line reminder closing each step's prompt."""

    def parse(self, completion: Completion, valid_actions: tuple[str, ...]) -> Decision:
        return Decision(completion, match_action(completion.text, valid_actions))

    def act(self, observation: Observation, valid_actions: tuple[str, ...], seed: int,
            note: str = "", oracle: Callable[[], str] | None = None) -> Decision:
        """Ask the model for this step's action among ``valid_actions`` (they may change
        from step to step, as TextWorld's admissible commands do). ``note`` (e.g.
        invalid-action feedback) opens the observation and stays in the history with it."""
        messages = self.history.messages(self.system_prompt, observation, note,
                                         self.answer_reminder())
        completion = self.client.complete(
            Request(messages, valid_actions, seed, self.player, oracle))
        decision = self.parse(completion, valid_actions)
        shown = f"{note}\n{observation.text}" if note else observation.text
        self._pending = shown
        return decision

    def record(self, executed_action: str) -> None:
        """Close the step: the observation just answered and the action really played."""
        self.history.add(self._pending, executed_action)
