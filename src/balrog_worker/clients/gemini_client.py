"""Gemini through the Gemini API's generateContent (backend ``gemini``), via google-genai.

The key goes in the ``x-goog-api-key`` header (never in the URL, so it cannot leak into
a logged address). google-genai retries nothing unless given ``retry_options``, and none
is given: retrying is decided once, in ``retry.py``. ``spec.timeout_s`` becomes the
SDK's per-request timeout (HttpOptions takes milliseconds).

Not supported here: ``constrain_actions`` (the API's JSON-schema output could restrict an
answer to an enum, but the agents expect free text around the action), so a spec asking
for it is rejected with ConfigError at construction rather than silently run
unconstrained under a recorded ``constrain_actions: true``.

Images (``Message.images``) go as inline-data parts (mime type ``image/png``), before the
message's text part, the order Google's image-understanding guide recommends; a turn
without images is one text part as before, so text-only requests are unchanged.
"""

from __future__ import annotations

import math
import re
import sys
import typing
from types import ModuleType

import httpx
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from balrog_worker.clients.api import APIClient, api_key, check_message
from balrog_worker.clients.base import Completion, Message, Request
from balrog_worker.clients.errors import (
    FatalModelError,
    ModelError,
    RateLimitError,
    TransientModelError,
)
from balrog_worker.clients.http import http_client
from balrog_worker.clients.images import PNG_MEDIA_TYPE, check_png
from balrog_worker.clients.retry import retry_after_seconds
from balrog_worker.config import ModelSpec

try:  # google-genai may send through httpx2 (a fork of httpx with its own exceptions)
    import httpx2

    HTTP_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, httpx2.HTTPError)
    TIMEOUTS: tuple[type[Exception], ...] = (httpx.TimeoutException, httpx2.TimeoutException)
except ImportError:  # pragma: no cover - depends on what is installed
    HTTP_ERRORS = (httpx.HTTPError,)
    TIMEOUTS = (httpx.TimeoutException,)

KEY_VARIABLES = ("GOOGLE_API_KEY", "GEMINI_API_KEY")
RETRYABLE_STATUSES = (408, 409)
SEED_MODULUS = 2**31  # the API's seed is a signed 32-bit integer


def to_contents(messages: tuple[Message, ...]) -> tuple[str, list[types.Content]]:
    """The system instruction and the turns: roles ``user`` and ``model``. Every system
    message joins the instruction, and consecutive turns of one role are merged (blank
    line between), since the API expects the two roles to alternate."""
    system: list[str] = []
    turns: list[tuple[str, list[Message]]] = []
    for message in messages:
        check_message(message, "gemini")
        if message.role == "system":
            system.append(message.content)
            continue
        role = "model" if message.role == "assistant" else "user"
        if turns and turns[-1][0] == role:
            turns[-1][1].append(message)
        else:
            turns.append((role, [message]))
    contents = [types.Content(role=role, parts=_parts(group)) for role, group in turns]
    return "\n\n".join(system), contents


def _parts(messages: list[Message]) -> list[types.Part]:
    """One turn's parts: its text in one part (blank line between messages) when no
    message has images; else, message by message, the images (oldest first) then the
    text (no part for empty text)."""
    if not any(message.images for message in messages):
        return [types.Part(text="\n\n".join(message.content for message in messages))]
    parts: list[types.Part] = []
    for message in messages:
        parts.extend(types.Part.from_bytes(data=check_png(image, "gemini"),
                                           mime_type=PNG_MEDIA_TYPE)
                     for image in message.images)
        if message.content:
            parts.append(types.Part(text=message.content))
    return parts


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def parse_retry_after(error: genai_errors.APIError) -> float | None:
    """How long a 429 asks us to wait: the ``RetryInfo`` detail of the error body (how
    the Gemini API says it, e.g. ``"retryDelay": "12s"``), else a Retry-After header."""
    body = error.details if isinstance(error.details, dict) else {}
    inner = body.get("error", body)
    for detail in (inner.get("details") or []) if isinstance(inner, dict) else []:
        if isinstance(detail, dict) and str(detail.get("@type", "")).endswith("RetryInfo"):
            match = _DURATION.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return retry_after_seconds(getattr(error.response, "headers", None))


def translate(error: genai_errors.APIError) -> ModelError:
    """An HTTP error from the API as one of ours, so retry.py knows whether to retry."""
    status = error.code
    detail = f"{error.status}: {error.message}" if error.status else str(error.message)
    message = f"gemini: HTTP {status}: {detail}"
    if status == 429:
        return RateLimitError(message, status=status, retry_after=parse_retry_after(error))
    if status is None or status >= 500 or status in RETRYABLE_STATUSES:
        return TransientModelError(message, status=status)
    if "token count" in detail.lower() and "exceed" in detail.lower():
        return FatalModelError(f"gemini: prompt too long: {detail}", status=status)
    return FatalModelError(message, status=status)


def sdk_http_module() -> ModuleType:
    """The httpx module whose Client google-genai takes (httpx2, the openai and anthropic
    SDKs' own, where it takes either; httpx before google-genai 3)."""
    annotation = types.HttpOptions.model_fields["httpx_client"].annotation
    taken = {kind.__module__.partition(".")[0]
             for kind in (*typing.get_args(annotation), annotation)
             if isinstance(kind, type) and kind.__name__ == "Client"}
    return sys.modules["httpx2"] if "httpx2" in taken else httpx


class GeminiClient(APIClient):
    """One Gemini model; thread-safe (the SDK client shares one connection pool)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        options = types.HttpOptions(timeout=max(1, math.ceil(spec.timeout_s * 1000)),
                                    retry_options=None,
                                    httpx_client=http_client(sdk_http_module()))
        if spec.base_url:
            options.base_url = spec.base_url
        # vertexai=False explicitly: GOOGLE_GENAI_USE_VERTEXAI in the environment must not
        # send the key to another service.
        self._sdk = genai.Client(api_key=api_key(spec, KEY_VARIABLES), vertexai=False,
                                 http_options=options)

    def _call(self, request: Request) -> Completion:
        system, contents = to_contents(request.messages)
        if not contents:
            raise FatalModelError("gemini: a request needs at least one user turn")
        generation = self.spec.generation
        config = types.GenerateContentConfig(
            system_instruction=system or None,
            temperature=generation.temperature,
            max_output_tokens=generation.max_tokens,
            top_p=generation.top_p,
            seed=request.seed % SEED_MODULUS,
            candidate_count=1,
        )
        # ``from None``: the SDK's exceptions quote the error body, which may quote the key
        # (a traceback would print them); ours are redacted.
        try:
            response = self._sdk.models.generate_content(
                model=self.spec.model, contents=contents, config=config)
        except genai_errors.APIError as error:
            raise translate(error) from None
        except TIMEOUTS:
            raise TransientModelError("gemini: request timed out") from None
        except HTTP_ERRORS as error:
            raise TransientModelError(
                f"gemini: connection failed: {type(error).__name__}: {error}") from None
        except ValueError as error:  # a body that is not JSON, or not a response's shape
            raise TransientModelError(f"gemini: malformed response body: {error}") from None
        return self._completion(response)

    @staticmethod
    def _completion(response: types.GenerateContentResponse) -> Completion:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason:
            # The same prompt would be blocked again: retrying cannot help.
            raise FatalModelError(f"gemini: prompt blocked ({feedback.block_reason})")
        candidate = response.candidates[0] if response.candidates else None
        parts = (candidate.content.parts if candidate and candidate.content else None) or []
        # Thought summaries are not the answer; only the visible text is.
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if not text.strip():
            reason = candidate.finish_reason if candidate else "no candidates"
            raise TransientModelError(f"gemini: empty completion (finish reason {reason})")
        usage = response.usage_metadata or types.GenerateContentResponseUsageMetadata()
        thoughts = usage.thoughts_token_count or 0
        # Thinking is billed as output, so it counts in output_tokens (as reasoning does
        # for every other backend); prompt_token_count already includes the cached part.
        return Completion(
            text=text,
            input_tokens=usage.prompt_token_count or 0,
            output_tokens=(usage.candidates_token_count or 0) + thoughts,
            cached_input_tokens=usage.cached_content_token_count or 0,
            reasoning_tokens=thoughts,
        )

    def close(self) -> None:
        self._sdk.close()
