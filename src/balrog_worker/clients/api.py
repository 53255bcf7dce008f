"""What every remote backend shares: its key, a timeout, retries, a concurrency limit."""

from __future__ import annotations

import asyncio
import os
import re
import threading
import time
from collections.abc import Awaitable
from dataclasses import replace

from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.clients.errors import FatalModelError, TransientModelError
from balrog_worker.clients.http import (
    BodyTooLarge,
    CallLoop,
    DeadlinePassed,
    within_deadline,
    within_deadline_here,
)
from balrog_worker.clients.retry import RetryPolicy, call_with_retries
from balrog_worker.config import ConfigError, ModelSpec
from balrog_worker.cooperative import cooperative, wait
from balrog_worker.secrets import register_secret

SLOT_POLL_S = 0.01  # how often a cooperative episode looks for a free call slot
_SURROGATE = re.compile("[\ud800-\udfff]")


def api_key(spec: ModelSpec, default_variables: tuple[str, ...]) -> str:
    """The key from the environment, or ConfigError naming the variable to set (before
    any episode runs). The key itself never appears in a message."""
    variables = (spec.api_key_env,) if spec.api_key_env else default_variables
    for variable in variables:
        if os.environ.get(variable):
            register_secret(os.environ[variable])  # error messages hide it from now on
            return os.environ[variable]
    raise ConfigError(f"model {spec.name!r} ({spec.backend}) needs an API key: set "
                      f"{' or '.join(variables)} in the environment")


def check_message(message: Message, where: str) -> None:
    """Refuse, before anything is sent, what no provider API accepts: an unknown role,
    or images outside a user message."""
    if message.role not in ("system", "user", "assistant"):
        raise FatalModelError(f"{where}: unknown message role {message.role!r}")
    if message.images and message.role != "user":
        raise FatalModelError(f"{where}: images can only be sent with user messages, "
                              f"not {message.role!r} ones")


def well_formed(text: str) -> str:
    """``text`` as Unicode that UTF-8 can encode. A JSON body may carry lone surrogates
    (``"\\ud800"`` decodes to one); left in, they would break the record files, the
    stdout stream and the next request's body, so each becomes U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


class APIClient(Client):
    """A provider client: subclasses implement ``_call`` (one attempt, errors translated
    into ``clients.errors``), or ``_acall``, its coroutine, and set ``asynchronous``;
    retries, timing and the concurrency limit live here."""

    # The backends of this client whose servers can force answers into the valid actions.
    constrained_backends: tuple[str, ...] = ()
    # Attempts are ``_acall`` coroutines on the process's event loop, not ``_call``s in
    # threads of their own (clients.http).
    asynchronous = False

    def __init__(self, spec: ModelSpec):
        if not spec.model:
            raise ConfigError(f"model {spec.name!r} ({spec.backend}) needs 'model': the model "
                              "id the provider serves")
        if spec.constrain_actions and spec.backend not in self.constrained_backends:
            # Refused rather than ignored: the record would claim constrained answers.
            raise ConfigError(f"model {spec.name!r} ({spec.backend}): constrain_actions is "
                              "not supported by this backend (vllm and openai_compatible "
                              "support it); set it to false")
        self.spec = spec
        self.policy = RetryPolicy(max_retries=spec.max_retries)
        self.max_concurrency = spec.concurrency
        self._slots = threading.BoundedSemaphore(spec.concurrency)
        # The event loop of an asynchronous client, held from its first call on (a
        # client refused while being built holds nothing).
        self.calls: CallLoop | None = None
        self._holding = threading.Lock()

    @property
    def awaits_on_loop(self) -> bool:
        return self.asynchronous

    def complete(self, request: Request) -> Completion:
        on_loop = self._on_call_loop()
        if on_loop:  # blocking here would stop the loop, and the calls that free a slot
            while not self._slots.acquire(blocking=False):
                wait(asyncio.sleep(SLOT_POLL_S))
        else:
            self._slots.acquire()
        try:
            start = time.perf_counter()
            completion, retries = call_with_retries(
                lambda: self._attempt(request, on_loop), self.policy,
                sleep=(lambda seconds: wait(asyncio.sleep(seconds))) if on_loop
                else time.sleep)
            latency = time.perf_counter() - start
        finally:
            self._slots.release()
        text, limit = completion.text, self.spec.answer_limit
        truncated = completion.truncated or len(text) > limit
        return replace(completion, text=well_formed(text[:limit]), truncated=truncated,
                       latency_s=latency, retries=retries)

    def _on_call_loop(self) -> bool:
        """Whether this call comes from an episode running on the loop that sends this
        client's calls (``cooperative``): it then awaits them there, never blocks."""
        if not self.asynchronous or not cooperative():
            return False
        return asyncio.get_running_loop() is self._call_loop().loop

    def _attempt(self, request: Request, on_loop: bool = False) -> Completion:
        """One attempt within the wall-clock deadline (``timeout_s``), its response body
        read up to the size cap."""
        try:
            if on_loop:
                return wait(within_deadline_here(lambda: self._acall(request),
                                                 self.spec.timeout_s, self.spec.body_limit))
            if self.asynchronous:
                return self._call_loop().within_deadline(lambda: self._acall(request),
                                                  self.spec.timeout_s, self.spec.body_limit)
            return within_deadline(lambda: self._call(request), self.spec.timeout_s,
                                   self.spec.body_limit)
        except DeadlinePassed:
            raise TransientModelError(
                f"model {self.spec.name!r} ({self.spec.backend}): no complete answer within "
                f"{self.spec.timeout_s:g} s") from None
        except BodyTooLarge:
            # The server sent more than any answer within max_tokens can be: an empty
            # (invalid) answer, flagged; the call was made, so it counts.
            return Completion(text="", output_tokens=self.spec.generation.max_tokens,
                              truncated=True)

    def _call_loop(self) -> CallLoop:
        with self._holding:
            if self.calls is None:
                self.calls = CallLoop.hold()
            return self.calls

    def _release_loop(self, closing) -> None:
        """Run ``closing`` (the SDK client's ``close()`` coroutine) on the loop, and let
        the loop go; a client that never called has nothing open."""
        with self._holding:
            calls, self.calls = self.calls, None
        if calls is None:
            closing.close()  # never awaited: nothing to close
            return
        try:
            calls.run(closing)
        finally:
            calls.release()

    def _call(self, request: Request) -> Completion:
        """One attempt; raise FatalModelError, TransientModelError or RateLimitError."""
        raise NotImplementedError

    def _acall(self, request: Request) -> Awaitable[Completion]:
        """One attempt of an ``asynchronous`` client: the request is built in the calling
        thread, and the awaitable returned sends it on the event loop."""
        raise NotImplementedError
