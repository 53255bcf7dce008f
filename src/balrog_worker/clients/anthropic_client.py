"""Claude through the Anthropic Messages API (backend ``anthropic``).

The SDK's own retries are switched off (``max_retries=0``): retrying is decided once, in
``retry.py``, for every provider, so a failure is never retried twice over. The client's
timeout is ``spec.timeout_s`` for the whole request; passing it explicitly also stops the
SDK from refusing a non-streaming call whose ``max_tokens`` it guesses would be slow.

Not supported here:

* ``constrain_actions``: the Messages API has no grammar-constrained decoding, so a spec
  asking for it is rejected with ConfigError at construction rather than silently run
  unconstrained under a recorded ``constrain_actions: true``.
* ``seed``: the API takes none; answers at temperature > 0 are not reproducible.
* Sampling settings on recent models: see ``sampling``.

Images (``Message.images``) go as base64 ``image`` content blocks (media type
``image/png``), before the message's text block, the order Anthropic's vision guide
recommends; a turn without images keeps its plain string content, so text-only requests
are sent exactly as before.
"""

from __future__ import annotations

import anthropic

from balrog_worker.clients.api import APIClient, api_key, check_message
from balrog_worker.clients.base import Completion, Message, Request
from balrog_worker.clients.errors import (
    FatalModelError,
    ModelError,
    RateLimitError,
    TransientModelError,
)
from balrog_worker.clients.http import http_client
from balrog_worker.clients.images import PNG_MEDIA_TYPE, png_base64
from balrog_worker.clients.retry import retry_after_seconds
from balrog_worker.config import Generation, ModelSpec

KEY_VARIABLES = ("ANTHROPIC_API_KEY",)

# Statuses worth another try besides 429 and 5xx (529 is "overloaded"): the same set the
# SDK itself would retry.
RETRYABLE_STATUSES = (408, 409)


def to_messages(messages: tuple[Message, ...]) -> tuple[str, list[dict]]:
    """The system prompt and the turns, in the shape the Messages API wants.

    The API takes the system prompt as a separate parameter and rejects two turns of one
    role in a row, so every system message (wherever it stands) joins the system prompt,
    and consecutive turns of one role are merged, blank line between (block after block
    once either carries images).
    """
    system: list[str] = []
    turns: list[dict] = []
    for message in messages:
        check_message(message, "anthropic")
        if message.role == "system":
            system.append(message.content)
            continue
        if turns and turns[-1]["role"] == message.role:
            turns[-1]["content"] = _merge(turns[-1]["content"], message)
        else:
            turns.append({"role": message.role, "content": _content(message)})
    return "\n\n".join(system), turns


def _content(message: Message) -> str | list[dict]:
    """A message's content: its text as is, or (with images) image blocks, oldest first,
    then a text block (left out when the text is empty: the API refuses empty ones)."""
    if not message.images:
        return message.content
    blocks = [{"type": "image",
               "source": {"type": "base64", "media_type": PNG_MEDIA_TYPE,
                          "data": png_base64(image, "anthropic")}}
              for image in message.images]
    if message.content:
        blocks.append({"type": "text", "text": message.content})
    return blocks


def _merge(content: str | list[dict], message: Message) -> str | list[dict]:
    """A turn's content with the next message of its role appended: text joined by a
    blank line while neither has images, else the blocks of both in order."""
    if isinstance(content, str) and not message.images:
        return content + "\n\n" + message.content
    return _as_blocks(content) + _as_blocks(_content(message))


def _as_blocks(content: str | list[dict]) -> list[dict]:
    """Content as a list of blocks (no block for empty text)."""
    if isinstance(content, list):
        return content
    return [{"type": "text", "text": content}] if content else []


def sampling(generation: Generation) -> dict:
    """Temperature and top_p, sent through ``extra_body``.

    SDK 1.0 dropped them from ``messages.create``'s signature (the API deprecated them:
    models after Claude Opus 4.6 answer 400 to any value but the default), yet older
    models still take them. So they go in the body as is, and only when they differ
    from the API's default (temperature 1.0, top_p unset), which keeps a spec at the
    defaults valid for every model. A non-default value on a model that rejects it is
    a 400: fatal, with the API's own message, rather than silently ignored.
    """
    body: dict = {}
    if generation.temperature != 1.0:
        body["temperature"] = generation.temperature
    if generation.top_p is not None:
        body["top_p"] = generation.top_p
    return body


def translate(error: anthropic.AnthropicError) -> ModelError:
    """The SDK's exception as one of ours, so retry.py knows whether to try again."""
    if isinstance(error, anthropic.APITimeoutError):
        return TransientModelError("anthropic: request timed out")
    if isinstance(error, anthropic.APIConnectionError):
        return TransientModelError(f"anthropic: connection failed: {error}")
    if isinstance(error, anthropic.APIStatusError):
        status = error.status_code
        detail = _error_message(error)
        message = f"anthropic: HTTP {status}: {detail}"
        if status == 429:
            return RateLimitError(message, status=status,
                                  retry_after=retry_after_seconds(error.response.headers))
        if status >= 500 or status in RETRYABLE_STATUSES:
            return TransientModelError(message, status=status)
        if "prompt is too long" in detail.lower():
            return FatalModelError(f"anthropic: prompt too long: {detail}", status=status)
        return FatalModelError(message, status=status)
    if isinstance(error, anthropic.APIResponseValidationError):
        return TransientModelError(f"anthropic: unexpected response body: {error}")
    return TransientModelError(f"anthropic: {type(error).__name__}: {error}")


def _error_message(error: anthropic.APIStatusError) -> str:
    """The provider's own error text where the body has one, else the SDK's summary."""
    body = error.body
    if isinstance(body, dict):
        inner = body.get("error")
        if isinstance(inner, dict) and inner.get("message"):
            return f"{inner.get('type', 'error')}: {inner['message']}"
    return str(error.message)


class AnthropicClient(APIClient):
    """One Claude model; thread-safe (the SDK client shares one connection pool)."""

    def __init__(self, spec: ModelSpec):
        super().__init__(spec)
        self._sdk = anthropic.Anthropic(
            api_key=api_key(spec, KEY_VARIABLES),
            base_url=spec.base_url,
            timeout=spec.timeout_s,
            max_retries=0,
            http_client=http_client(),
        )

    def _call(self, request: Request) -> Completion:
        system, turns = to_messages(request.messages)
        if not turns:
            raise FatalModelError("anthropic: a request needs at least one user turn")
        generation = self.spec.generation
        params: dict = {"model": self.spec.model, "messages": turns,
                        "max_tokens": generation.max_tokens}
        if system:
            params["system"] = system
        # ``from None``: the SDK's exceptions quote the error body, which may quote the key
        # (a traceback would print them); ours are redacted.
        try:
            response = self._sdk.messages.create(**params, extra_body=sampling(generation))
        except anthropic.AnthropicError as error:
            raise translate(error) from None
        except ValueError as error:  # a body that is not JSON at all
            raise TransientModelError(f"anthropic: malformed response body: {error}") from None
        return self._completion(response)

    @staticmethod
    def _completion(response) -> Completion:
        try:
            text = "".join(block.text for block in response.content
                           if getattr(block, "type", None) == "text")
            usage = response.usage
        except (AttributeError, TypeError) as error:
            raise TransientModelError(f"anthropic: unexpected response shape: {error}") \
                from error
        if not text.strip():
            raise TransientModelError(
                f"anthropic: empty completion (stop_reason {response.stop_reason})")
        cached = usage.cache_read_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        # The API counts cache reads and writes apart from input_tokens; the total keeps
        # cached_input_tokens a part of input_tokens, as for every other backend.
        return Completion(
            text=text,
            input_tokens=(usage.input_tokens or 0) + cached + written,
            output_tokens=usage.output_tokens or 0,
            cached_input_tokens=cached,
        )

    def close(self) -> None:
        self._sdk.close()
