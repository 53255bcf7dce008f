"""The prompt of each step: instructions, then a window of past turns, then the present.

Messages are laid out so the prefix stays stable from one step to the next (the system
prompt first, demonstrations if any, past turns appended in order), which lets provider
prompt caches and vLLM's prefix caching hit. Three windows, as BALROG has them:

- ``max_text_history``: past (observation, answer) turns replayed;
- ``max_cot_history``: of those, how many most recent answers are replayed whole, with
  their reasoning (older ones show only the action played);
- ``max_image_history``: how many of the most recent observations, the current one
  included, carry their image.
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
    answer: str  # the model's answer as it was (reasoning and action)
    image: bytes | None = None


class History:
    """The last ``max_text_history`` turns of one player."""

    def __init__(self, max_text_history: int, max_cot_history: int = 1,
                 max_image_history: int = 0):
        self._turns: deque[Turn] = deque(maxlen=max_text_history or None)
        self._enabled = max_text_history > 0
        self.max_cot_history = max_cot_history
        self.max_image_history = max_image_history

    def __len__(self) -> int:
        return len(self._turns)

    def add(self, turn: Turn) -> None:
        if self._enabled:
            self._turns.append(turn)

    def messages(self, system: str, current: Observation, note: str, reminder: str,
                 current_image: bytes | None = None, preamble: tuple[Message, ...] = ()):
        """System prompt, optional demonstrations, past turns, then the current
        observation with its short-term context and the reminder of how to answer."""
        out = [Message("system", system), *preamble]
        turns = list(self._turns)
        images_left = self.max_image_history - (current_image is not None)
        for position, turn in enumerate(turns):
            age = len(turns) - position  # 1 for the newest past turn
            image = turn.image if turn.image is not None and age <= images_left else None
            out.append(Message("user", turn.observation, (image,) if image else ()))
            whole = age <= self.max_cot_history
            out.append(Message("assistant", turn.answer if whole else turn.action))
        present = [note, "Current observation:", current.text]
        if current.context:
            present.append(current.context)
        present.append(reminder)
        shown_image = (current_image,) if current_image and self.max_image_history else ()
        out.append(Message("user", "\n".join(part for part in present if part), shown_image))
        return tuple(out)
