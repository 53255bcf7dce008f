"""What every agent does each step, as BALROG's agents do it.

Each step: the previous answer joins the history (if the agent extracted one), then the
observation; the prompt is the history's messages with the agent's answer format
appended to the last user message; the model answers and the agent extracts a candidate
action. The candidate is what the history remembers, valid or not (BALROG passes the
extracted answer back as ``prev_action``); the evaluator decides whether it is played.

How the answer is read is the cell's ``answer_parsing``: ``strict`` (the default) is
BALROG's rule for each agent type, after which a candidate must equal an action name
exactly; ``lenient`` is this project's tolerant reading (case, fences, punctuation,
first line), an opt-in that changes scores and is recorded with them.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace

from balrog_worker.agents.history import History
from balrog_worker.agents.parsing import match_action
from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.config import AgentSpec
from balrog_worker.envs.base import Observation

# BALROG's naive filter: only letters, whitespace and ':' survive (so digits never do).
_NOT_LETTER = re.compile(r"[^a-zA-Z\s:]")


def letters_only(text: str) -> str:
    return _NOT_LETTER.sub("", text)


def invalid_action_note(default_action: str) -> str:
    """The text BALROG puts before the next observation after an invalid answer
    (``eval.feedback_on_invalid_action``), verbatim: models see it, so it is protocol."""
    return ("\n\nYour previous output did not contain a valid action. Defaulted to action: "
            f"{default_action}\n\nObservation:\n")


@dataclass(frozen=True)
class Decision:
    completion: Completion
    candidate: str  # the action the answer names (may be invalid; "" if none)
    reasoning: str | None = None
    shown: str = ""  # the current observation's message as the model received it


class Agent(ABC):
    """One player's policy for one episode; holds that episode's history."""

    def __init__(self, spec: AgentSpec, client: Client, instructions: str,
                 player: str = "agent_0", env_task: tuple[str, str] | None = None,
                 format_text: str | None = None):
        self.spec = spec
        self.client = client
        self.player = player
        self.env_task = env_task
        self.instructions = instructions
        self.history = History(spec.max_text_history, spec.max_image_history,
                               spec.max_cot_history)
        self._unanswered: tuple[str, str | None] | None = None  # (candidate, reasoning)
        # BALROG's own answer-format text, where the agent asks in BALROG's wording.
        self.format_text = format_text

    @abstractmethod
    def answer_format(self) -> str:
        """What BALROG's agent appends to the last user message: how to answer."""

    @abstractmethod
    def extract(self, text: str) -> tuple[str, str | None]:
        """BALROG's reading of an answer: (candidate action, reasoning to log)."""

    def remembered_reasoning(self, decision: Decision) -> str | None:
        """Reasoning replayed in the history with this answer (BALROG's cot only)."""
        return None

    def lenient(self, text: str, valid_actions: tuple[str, ...]) -> tuple[str, str | None]:
        """The tolerant reading (``answer_parsing: lenient``) of agents with no own one."""
        return match_action(text, valid_actions), None

    def opening(self) -> list[Message]:
        """The messages before the history: the instructions, as a user message."""
        return [Message("user", self.instructions)]

    def parse(self, completion: Completion, valid_actions: tuple[str, ...]) -> Decision:
        if completion.verbatim:  # a baseline policy's action: nothing to read
            return Decision(completion, completion.text)
        if self.spec.answer_parsing == "lenient":
            candidate, reasoning = self.lenient(completion.text, valid_actions)
        else:
            # BALROG's clients strip every completion before an agent reads it.
            candidate, reasoning = self.extract(completion.text.strip())
        return Decision(completion, candidate, reasoning)

    def act(self, observation: Observation, valid_actions: tuple[str, ...], seed: int,
            note: str = "", oracle: Callable[[], str] | None = None,
            image: bytes | None = None) -> Decision:
        """Ask the model for this step's action among ``valid_actions``. ``note`` (the
        invalid-action feedback) opens the observation's text and stays in the history
        with it; ``image`` is the observation's PNG frame, for vision agents."""
        self._close_turn()
        self.history.observe(note + observation.text, observation.context,
                             image if self.spec.max_image_history else None)
        messages = self.opening() + self.history.messages(None)
        shown = messages[-1].content
        if messages[-1].role == "user":
            last = messages[-1]
            answer_format = self.format_text or self.answer_format()
            messages[-1] = Message("user", f"{last.content}\n\n{answer_format}",
                                   last.images)
        completion = self.client.complete(
            Request(tuple(messages), valid_actions, seed, self.player, oracle))
        decision = replace(self.parse(completion, valid_actions), shown=shown)
        self._unanswered = (decision.candidate, self.remembered_reasoning(decision))
        return decision

    def record(self, played_action: str) -> None:
        """The turn's action was played. If the agent answered, the history keeps its
        extracted answer (BALROG's rule); a turn it did not answer (an action given from
        outside, as in ``serve``) keeps the action played."""
        if self._unanswered is None:
            self._unanswered = (played_action, None)

    def _close_turn(self) -> None:
        if self._unanswered is not None:
            action, reasoning = self._unanswered
            if action:  # BALROG records no answer when the extracted one is empty
                self.history.answered(action, reasoning)
            self._unanswered = None
