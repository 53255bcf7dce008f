"""What can go wrong with a model call, sorted by what to do about it.

Every provider client translates its SDK's exceptions into these, so retrying is decided
in one place (``retry.py``): rate limits and transient failures are retried with backoff,
fatal ones (bad key, bad request, prompt too long) are not.
"""

from __future__ import annotations

from balrog_worker.secrets import redact


class ModelError(Exception):
    """A model call failed. Messages never contain an API key (see ``redact``)."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(redact(message))
        self.status = status


class FatalModelError(ModelError):
    """Retrying cannot help: authentication, a malformed request, a prompt too long."""


class TransientModelError(ModelError):
    """A server error, a timeout or a dropped connection: worth another try."""

    retryable = True


class RateLimitError(TransientModelError):
    """The provider asks us to slow down, possibly saying for how long."""

    def __init__(self, message: str, *, status: int | None = 429,
                 retry_after: float | None = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class RetriesExhausted(ModelError):
    """Every attempt failed; ``last`` is the final error."""

    def __init__(self, last: ModelError, attempts: int):
        super().__init__(f"gave up after {attempts} attempts: {type(last).__name__}: {last}",
                         status=last.status)
        self.last = last
        self.attempts = attempts

