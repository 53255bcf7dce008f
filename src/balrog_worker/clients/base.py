"""The one interface every model backend implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str
    # PNG-encoded frames shown with this message (vision agents), oldest first.
    images: tuple[bytes, ...] = field(default=(), repr=False)


@dataclass(frozen=True)
class Request:
    """One model call. ``seed`` is derived from (episode seed, step, agent), so a sampling
    backend or a baseline answers the same request the same way on every rerun."""

    messages: tuple[Message, ...]
    valid_actions: tuple[str, ...]
    seed: int
    player: str = "agent_0"  # which player of the game asks (one history per player)
    # The game's scripted expert, read only by the ``scripted`` baseline: it is not part
    # of what a model sees.
    oracle: Callable[[], str] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Completion:
    text: str
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cached_input_tokens: int = 0  # input served from the provider's prompt cache
    reasoning_tokens: int = 0  # hidden reasoning, where the provider reports it
    retries: int = 0
    # An action chosen by a policy (the random and scripted baselines), not text for the
    # agent to read: answer parsing rules apply to models only.
    verbatim: bool = False
    # The answer was longer than the model's max_answer_chars and was cut (or its body
    # was too large to read, and the text is empty).
    truncated: bool = False


class Client(ABC):
    """A model backend. Implementations must be safe to call from several threads."""

    # Calls this client can usefully serve at once (None: no limit of its own). The
    # evaluator plays no more episodes concurrently than this.
    max_concurrency: int | None = None
    # Whether its calls, made by an episode running on the process's event loop
    # (``cooperative``), await there instead of blocking: such episodes can then share
    # the loop's thread (the asynchronous API clients).
    awaits_on_loop: bool = False

    @abstractmethod
    def complete(self, request: Request) -> Completion: ...

    def close(self) -> None:  # noqa: B027 - stateless clients hold nothing
        pass
