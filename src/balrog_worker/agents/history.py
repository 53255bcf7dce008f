"""The prompt of each step: instructions, then a window of past turns, then the present.

Messages are laid out so the prefix stays stable from one step to the next (the system
prompt first, past turns appended in order), which lets prompt caches hit.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from balrog_worker.clients.base import Message
from balrog_worker.envs.base import Observation


@dataclass(frozen=True)
class Turn:
    observation: str
    action: str


class History:
    """The last ``max_text_history`` (observation, action) turns of one agent."""

    def __init__(self, max_text_history: int):
        self._turns: deque[Turn] = deque(maxlen=max_text_history or None)
        self._enabled = max_text_history > 0

    def __len__(self) -> int:
        return len(self._turns)

    def add(self, observation: str, action: str) -> None:
        if self._enabled:
            self._turns.append(Turn(observation, action))

    def messages(self, system: str, current: Observation, note: str, answer_format: str):
        """System prompt, past turns, then the current observation with its short-term
        context and the reminder of how to answer."""
        out = [Message("system", system)]
        for turn in self._turns:
            out.append(Message("user", turn.observation))
            out.append(Message("assistant", turn.action))
        present = [note, "Current observation:", current.text]
        if current.context:
            present.append(current.context)
        present.append(answer_format)
        out.append(Message("user", "\n".join(part for part in present if part)))
        return tuple(out)
