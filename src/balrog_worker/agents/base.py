"""What every agent does each step: build a prompt, call the model, parse an action."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace

from balrog_worker.agents.history import History, Turn
from balrog_worker.agents.parsing import match_action
from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.config import AgentSpec
from balrog_worker.envs.base import Observation


@dataclass(frozen=True)
class Decision:
    completion: Completion
    candidate: str  # the action the answer names (may be invalid)
    reasoning: str | None = None


class Agent(ABC):
    """One player's policy for one episode; holds that episode's history.

    Subclasses say how the model must answer (``answer_rules``, ``answer_reminder``) and
    how to read the answer (``parse``); they may add messages before the history
    (``preamble``) or a line to each observation (``carry``)."""

    def __init__(self, spec: AgentSpec, client: Client, instructions: str,
                 player: str = "agent_0", env_task: tuple[str, str] | None = None):
        self.spec = spec
        self.client = client
        self.player = player
        self.env_task = env_task
        self.system_prompt = f"{instructions}\n\n{self.answer_rules()}"
        self.history = History(spec.max_text_history, spec.max_cot_history,
                               spec.max_image_history)
        self._pending: Turn | None = None

    @abstractmethod
    def answer_rules(self) -> str:
        """How the model must format its answer (appended to the instructions)."""

    @abstractmethod
    def answer_reminder(self) -> str:
        """A one-line reminder closing each step's prompt."""

    def parse(self, completion: Completion, valid_actions: tuple[str, ...]) -> Decision:
        return Decision(completion, match_action(completion.text, valid_actions))

    def preamble(self) -> tuple[Message, ...]:
        return ()

    def carry(self) -> str:
        """A line shown with the current observation (e.g. the plan so far)."""
        return ""

    def act(self, observation: Observation, valid_actions: tuple[str, ...], seed: int,
            note: str = "", oracle: Callable[[], str] | None = None) -> Decision:
        """Ask the model for this step's action among ``valid_actions`` (they may change
        from step to step, as TextWorld's admissible commands do). ``note`` (e.g.
        invalid-action feedback) opens the observation and stays in the history with it."""
        image = None
        if self.spec.max_image_history and observation.image is not None:
            from balrog_worker.clients.images import encode_png

            image = encode_png(observation.image)
        note = "\n".join(part for part in (note, self.carry()) if part)
        messages = self.history.messages(self.system_prompt, observation, note,
                                         self.answer_reminder(), image, self.preamble())
        completion = self.client.complete(
            Request(messages, valid_actions, seed, self.player, oracle))
        decision = self.parse(completion, valid_actions)
        shown = f"{note}\n{observation.text}" if note else observation.text
        self._pending = Turn(shown, "", completion.text, image)
        return decision

    def record(self, executed_action: str) -> None:
        """Close the step: the observation just answered and the action really played."""
        if self._pending is not None:
            self.history.add(replace(self._pending, action=executed_action))
            self._pending = None
