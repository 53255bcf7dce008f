"""Retries with exponential backoff and full jitter, honouring Retry-After."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from balrog_worker.clients.errors import ModelError, RateLimitError, RetriesExhausted

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """BALROG's defaults: 5 retries, backoff from 2 s (capped at 60 s)."""

    max_retries: int = 5
    base_delay_s: float = 2.0
    max_delay_s: float = 60.0

    def delay(self, attempt: int, error: ModelError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        if isinstance(error, RateLimitError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), self.max_delay_s)
        ceiling = min(self.base_delay_s * 2 ** (attempt - 1), self.max_delay_s)
        return rng.uniform(0, ceiling)  # full jitter: parallel jobs do not retry in step


def call_with_retries(call: Callable[[], T], policy: RetryPolicy, *,
                      sleep: Callable[[float], None] = time.sleep,
                      rng: random.Random | None = None) -> tuple[T, int]:
    """``call()``'s result and how many retries it took; raises the fatal error at once,
    or RetriesExhausted once ``policy.max_retries`` retries have failed."""
    attempt = 0
    while True:
        try:
            return call(), attempt
        except ModelError as error:
            if not error.retryable:
                raise
            attempt += 1
            if attempt > policy.max_retries:
                raise RetriesExhausted(error, attempt) from error
            rng = rng or random.Random()  # made on the first retry: seeding costs a call
            sleep(policy.delay(attempt, error, rng))


def retry_after_seconds(headers) -> float | None:
    """Seconds a server asks us to wait: ``retry-after-ms`` (OpenAI's and Anthropic's),
    then ``Retry-After`` in seconds or as an HTTP date; None when absent or unreadable."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return max(float(value) / scale, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)
