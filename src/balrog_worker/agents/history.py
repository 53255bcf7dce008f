"""The prompt of each step, laid out as BALROG's ``HistoryPromptBuilder`` lays it out.

BALROG's rules (``balrog/prompt_builder/history.py`` at af7d1f1), which decide what a
model sees and so its score:

- the instructions are the first message, from the *user*;
- the history is a queue of events, observations and the agent's answers, holding
  twice ``max(max_text_history, max_image_history)`` events: older ones are gone;
- of the observations in the queue, the newest ``max_text_history`` (the current one
  included) show their text; older ones show only their heading. The newest
  ``max_image_history`` carry their image, with a line saying so;
- every observation is a user message headed "Observation:", except the newest, headed
  "Current Observation:" and followed by its short-term context (inventory, status);
- every answer is an assistant message holding the action the agent extracted; the newest
  ``max_cot_history`` answers that kept reasoning show "Previous plan:" and the reasoning
  instead.

The agent then appends its answer format to the last user message (``Agent.act``).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from balrog_worker.clients.base import Message


@dataclass
class _Observation:
    text: str
    image: bytes | None
    # The message last made of this event, and what it was made from: an event's message
    # changes only when it leaves a window, so most steps reuse every message but the
    # newest (making the 30-odd messages afresh each step took 4% of a BabyAI cell's CPU
    # at 256 calls in flight; 27 us a step, now 7).
    _shown: tuple[tuple, Message] | None = field(default=None, compare=False, repr=False)

    def message(self, newest: bool, context: str, with_text: bool,
                with_image: bool) -> Message:
        made_from = (newest, context, with_text, with_image)
        if self._shown is None or self._shown[0] != made_from:
            parts = ["Current Observation:" if newest else "Observation:"]
            if context:
                parts.append(context)
            if with_text:
                parts.append(self.text)
            images: tuple[bytes, ...] = ()
            if with_image:
                images = (self.image,)
                parts.append("Image observation provided.")
            self._shown = (made_from, Message("user", "\n".join(parts), images))
        return self._shown[1]


@dataclass
class _Answer:
    action: str
    reasoning: str | None
    _shown: tuple[bool, Message] | None = field(default=None, compare=False, repr=False)

    def message(self, with_reasoning: bool) -> Message:
        if self._shown is None or self._shown[0] != with_reasoning:
            content = f"Previous plan:\n{self.reasoning}" if with_reasoning else self.action
            self._shown = (with_reasoning, Message("assistant", content))
        return self._shown[1]


class History:
    """One player's event queue for one episode."""

    def __init__(self, max_text_history: int = 16, max_image_history: int = 0,
                 max_cot_history: int = 1):
        self.max_text_history = max_text_history
        self.max_image_history = max_image_history
        self.max_cot_history = max_cot_history
        self._events: deque[_Observation | _Answer] = deque(
            maxlen=2 * max(max_text_history, max_image_history))
        self._context = ""  # the short-term context of the newest observation

    def __len__(self) -> int:
        return len(self._events)

    def observe(self, text: str, context: str = "", image: bytes | None = None) -> None:
        self._events.append(_Observation(text, image))
        self._context = context

    def answered(self, action: str, reasoning: str | None = None) -> None:
        self._events.append(_Answer(action, reasoning))

    def messages(self, instructions: str | None) -> list[Message]:
        """The instructions (if any), then one message per event in the queue."""
        # Newest first, as every window counts back from the newest event: the newest
        # ``max_text_history`` observations show their text, the newest
        # ``max_image_history`` their image, and of the answers that kept reasoning, the
        # newest ``max_cot_history`` show it.
        texts, images, plans = (self.max_text_history, self.max_image_history,
                                self.max_cot_history)
        shown: list[Message] = []
        for age, event in enumerate(reversed(self._events)):
            if isinstance(event, _Answer):
                has_plan = event.reasoning is not None
                shown.append(event.message(has_plan and plans > 0))
                plans -= has_plan
                continue
            newest = age == 0
            shown.append(event.message(newest, self._context if newest else "",
                                       texts > 0 and event.text is not None,
                                       images > 0 and event.image is not None))
            texts -= 1
            images -= 1
        shown.reverse()
        return [Message("user", instructions), *shown] if instructions else shown
