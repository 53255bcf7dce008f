"""OpenAI's chat-completions API and the servers that speak it (vLLM, llama.cpp, ...).

One client serves three backends, all through the official ``openai`` SDK:

* ``openai``: api.openai.com (or ``base_url``); the key is required (OPENAI_API_KEY or
  ``api_key_env``).
* ``vllm``: a vLLM server at ``base_url``; a key only if ``api_key_env`` names one.
* ``openai_compatible``: any other server at ``base_url`` (llama.cpp's, LM Studio, ...).

Retries are ours (``APIClient``), so the SDK's own are switched off: two layers of
retries would multiply the attempts and hide them from ``Completion.retries``. Calls go
through the SDK's async client on the process's one event loop (``clients.http``), over
aiohttp where installed (the SDK's ``aiohttp`` extra): a cell keeps hundreds of calls in
flight at a fraction of the CPU that threads on the synchronous client cost.

``constrain_actions`` forces the answer to be one of the valid actions: vLLM gets
``guided_choice``, other compatible servers a GBNF ``grammar`` (what the llama.cpp servers,
both the C++ ``llama-server`` and llama-cpp-python's, accept). OpenAI's API has no such
constraint, so asking for it there is a ConfigError when the client is built: playing
unconstrained would record results under a spec (``identity()``) that claims otherwise.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import uuid
from collections.abc import Awaitable, Iterator

from balrog_worker.clients.api import APIClient, api_key, check_message
from balrog_worker.clients.base import Completion, Message, Request
from balrog_worker.clients.errors import (
    FatalModelError,
    ModelError,
    RateLimitError,
    TransientModelError,
)
from balrog_worker.clients.grammar import actions_grammar
from balrog_worker.clients.http import async_http_client
from balrog_worker.clients.images import PNG_MEDIA_TYPE, png_base64
from balrog_worker.clients.retry import retry_after_seconds
from balrog_worker.config import ConfigError, ModelSpec

OPENAI_BACKENDS = ("openai", "vllm", "openai_compatible")
# Local servers ignore the key, but the SDK refuses to start without one.
PLACEHOLDER_KEY = "EMPTY"
INSTALL_HINT = "the openai, vllm and openai_compatible backends need: pip install openai"
# Statuses worth another try besides 429 and 5xx: request timeout, conflict (the SDK's
# own retry list).
TRANSIENT_STATUSES = (408, 409)
# A 429 with this code means the account is out of credit: waiting does not help.
FATAL_RATE_LIMIT_CODES = ("insufficient_quota",)


class OpenAIClient(APIClient):
    """Chat completions over HTTP through the ``openai`` SDK's async client (thread-safe:
    every thread's calls run on the process's event loop)."""

    constrained_backends = ("vllm", "openai_compatible")
    asynchronous = True

    def __init__(self, spec: ModelSpec):
        if spec.backend not in OPENAI_BACKENDS:
            raise ConfigError(f"model {spec.name!r}: backend {spec.backend!r} is not one of "
                              f"{', '.join(OPENAI_BACKENDS)}")
        if spec.backend != "openai" and not spec.base_url:
            # Without it the SDK would send the request to api.openai.com.
            raise ConfigError(f"model {spec.name!r} ({spec.backend}) needs `base_url`, "
                              "e.g. http://127.0.0.1:8000/v1")
        super().__init__(spec)
        if spec.backend == "openai" or spec.api_key_env:
            self._key = api_key(spec, ("OPENAI_API_KEY",))
        else:
            self._key = PLACEHOLDER_KEY
        try:
            import openai
        except ImportError as error:
            raise RuntimeError(INSTALL_HINT) from error
        self._openai = openai
        self._sdk = openai.AsyncOpenAI(
            api_key=self._key, base_url=spec.base_url, timeout=spec.timeout_s,
            max_retries=0, http_client=async_http_client(openai.DefaultAioHttpClient))
        self._settings = self._fixed_arguments(spec)
        # Posted to as an absolute URL: the SDK then parses it once, where a relative
        # path is parsed and merged into the base URL on every call.
        self._chat_url = str(self._sdk.base_url.join("chat/completions"))
        self._attempts_id, self._attempts = uuid.uuid4().hex, itertools.count()

    @staticmethod
    def _fixed_arguments(spec: ModelSpec) -> dict:
        """The arguments every call shares."""
        generation = spec.generation
        settings: dict = {"model": spec.model, "temperature": generation.temperature}
        # OpenAI deprecated max_tokens (its reasoning models reject it); vLLM and llama.cpp
        # servers of every version know max_tokens.
        limit = "max_completion_tokens" if spec.backend == "openai" else "max_tokens"
        settings[limit] = generation.max_tokens
        if generation.top_p is not None:
            settings["top_p"] = generation.top_p
        return settings

    def _constraint(self, request: Request) -> dict:
        """The request's extra body fields forcing the answer into its valid actions."""
        if not self.spec.constrain_actions or not request.valid_actions:
            return {}
        if self.spec.backend == "vllm":
            return {"guided_choice": list(request.valid_actions)}
        return {"grammar": actions_grammar(request.valid_actions)}

    def _acall(self, request: Request) -> Awaitable[Completion]:
        # The body (images encoded) is built here, in the episode's thread: the event loop
        # only sends and parses.
        body = {**self._settings, "messages": [self._message(m) for m in request.messages],
                "seed": request.seed, **self._constraint(request)}
        return self._post(body)

    async def _post(self, body: dict) -> Completion:
        with self._sdk_errors():
            # The SDK's generic POST, not ``chat.completions.create``: create() walks every
            # message against its TypedDict unions (~5 ms of CPU a call for a 16-turn
            # history, the GIL held), which capped a cell near 130 calls/s. Our messages
            # are plain JSON already; the response is parsed and errors raised as create()
            # does, and only the API key is sent (create's auth, not the admin key's).
            # ``object``: the JSON as parsed, not a pydantic ChatCompletion, whose
            # construction was a tenth of a call's CPU; _completion checks every field.
            # ``idempotency_key``: without one the SDK draws a uuid4 per request (a
            # system call), which it does not even send to OpenAI; ours is as unique.
            response = await self._sdk.post(
                self._chat_url, body=body, cast_to=object,
                options={"security": {"bearer_auth": True},
                         "idempotency_key": f"{self._attempts_id}-{next(self._attempts)}"})
        return self._completion(response)

    @contextlib.contextmanager
    def _sdk_errors(self) -> Iterator[None]:
        """The SDK's errors as ours."""
        try:
            yield
        except self._openai.APIStatusError as error:
            raise self._status_error(error) from None
        except self._openai.APITimeoutError:
            raise TransientModelError(
                f"{self._where()}: no answer within {self.spec.timeout_s:g} s") from None
        except self._openai.APIConnectionError as error:
            raise TransientModelError(
                f"{self._where()}: connection failed: {self._scrub(error)}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as error:  # an unparseable body
            raise TransientModelError(
                f"{self._where()}: malformed response: {type(error).__name__}") from None
        # ``from None`` throughout: the SDK's exceptions hold the HTTP request, whose
        # headers carry the key; ours carry only a scrubbed message.

    def _message(self, message: Message) -> dict:
        """One message in the API's shape: plain text, or text and image parts."""
        check_message(message, self._where())
        if not message.images:
            return {"role": message.role, "content": message.content}
        parts: list[dict] = []
        if message.content:  # no empty text part: images alone are a message too
            parts.append({"type": "text", "text": message.content})
        for image in message.images:
            url = f"data:{PNG_MEDIA_TYPE};base64,{png_base64(image, self._where())}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        return {"role": "user", "content": parts}

    def _completion(self, data) -> Completion:
        """The completion in the response's JSON, read field by field (the body is the
        server's: any field may be missing or of another type)."""
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list):
            # The SDK returns the raw text when the body is not JSON at all.
            raise TransientModelError(f"{self._where()}: malformed response (no choices)")
        if not choices:
            raise TransientModelError(f"{self._where()}: empty response (no choices)")
        message = _field(choices[0], "message")
        text = _field(message, "content")
        usage = _field(data, "usage")
        return Completion(
            text=text if isinstance(text, str) else "",
            input_tokens=_int(_field(usage, "prompt_tokens")),
            output_tokens=_int(_field(usage, "completion_tokens")),
            cached_input_tokens=_int(_field(_field(usage, "prompt_tokens_details"),
                                            "cached_tokens")),
            reasoning_tokens=_int(_field(_field(usage, "completion_tokens_details"),
                                         "reasoning_tokens")),
        )

    def _status_error(self, error) -> ModelError:
        """The SDK's HTTP error as ours: 429 (but out of quota), 408, 409 and 5xx are worth
        retrying; every other status (400 bad request or prompt too long, 401, 403, 404,
        422) is not."""
        status = error.status_code
        detail = _error_detail(error)
        message = f"{self._where()}: HTTP {status}: {self._scrub(detail['message'])}"
        if status == 429 and detail["code"] not in FATAL_RATE_LIMIT_CODES:
            return RateLimitError(message, status=status,
                                  retry_after=retry_after_seconds(error.response.headers))
        if status >= 500 or status in TRANSIENT_STATUSES:
            return TransientModelError(message, status=status)
        return FatalModelError(message, status=status)

    def _where(self) -> str:
        return f"model {self.spec.name!r} ({self.spec.backend})"

    def _scrub(self, text: object) -> str:
        """``text`` without the key, even one in a variable ``errors.redact`` does not know
        (a server may echo the key it refused)."""
        text = str(text)
        if self._key != PLACEHOLDER_KEY and len(self._key) >= 4:
            text = text.replace(self._key, "***")
        return text

    def close(self) -> None:
        self._release_loop(self._sdk.close())


def _error_detail(error) -> dict:
    """``message`` and ``code`` from an OpenAI-format error body, whatever its shape."""
    body = getattr(error, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]  # some servers nest it, the SDK usually unwraps it
    if isinstance(body, dict):
        message = body.get("message") or body.get("detail") or getattr(error, "message", "")
        return {"message": str(message), "code": body.get("code")}
    return {"message": str(getattr(error, "message", "") or error), "code": None}


def _field(data, name: str):
    return data.get(name) if isinstance(data, dict) else None


def _int(value) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
