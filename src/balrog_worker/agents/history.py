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
from dataclasses import dataclass

from balrog_worker.clients.base import Message


@dataclass
class _Observation:
    text: str
    image: bytes | None


@dataclass
class _Answer:
    action: str
    reasoning: str | None


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
        events = list(self._events)
        observations = [e for e in events if isinstance(e, _Observation)]
        with_text = {id(e) for e in observations[::-1][:self.max_text_history]
                     if e.text is not None}
        with_image = {id(e) for e in observations[::-1][:self.max_image_history]
                      if e.image is not None}
        answers = [e for e in events if isinstance(e, _Answer) and e.reasoning is not None]
        with_reasoning = {id(e) for e in answers[::-1][:self.max_cot_history]}
        out = [Message("user", instructions)] if instructions else []
        for position, event in enumerate(events):
            if isinstance(event, _Answer):
                content = (f"Previous plan:\n{event.reasoning}" if id(event) in with_reasoning
                           else event.action)
                out.append(Message("assistant", content))
                continue
            newest = position == len(events) - 1
            parts = ["Current Observation:" if newest else "Observation:"]
            if newest and self._context:
                parts.append(self._context)
            if id(event) in with_text:
                parts.append(event.text)
            images: tuple[bytes, ...] = ()
            if id(event) in with_image:
                images = (event.image,)
                parts.append("Image observation provided.")
            out.append(Message("user", "\n".join(parts), images))
        return out
