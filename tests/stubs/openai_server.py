"""OpenAI's chat-completions wire format for ``StubServer`` (also what vLLM and the
llama.cpp server speak).

The bodies follow the documented shapes closely enough that the real ``openai`` SDK
parses them as it would a real response, including the usage details (cached prompt
tokens, reasoning tokens) the client reports.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from tests.stubs import StubServer

CACHED_TOKENS = 3  # what every stub answer claims came from the prompt cache
REASONING_TOKENS = 2


def _count(text: str) -> int:
    """A stand-in tokenizer: one token per word, at least one."""
    return max(1, len(text.split()))


def ok_body(request_json: dict, text: str, path: str) -> dict:
    """A ``chat.completion`` answering ``request_json`` with ``text``.

    An empty ``text`` (the stub's "empty" behaviour) gives an empty ``choices`` list, which
    is what a misbehaving server sends when it produced nothing; the client must treat it
    as a transient failure rather than read ``choices[0]``."""
    del path  # one endpoint: /v1/chat/completions
    prompt = json.dumps(request_json.get("messages", []))
    prompt_tokens = _count(prompt) + CACHED_TOKENS
    completion_tokens = _count(text) + REASONING_TOKENS
    choices = [] if text == "" else [{
        "index": 0,
        "message": {"role": "assistant", "content": text, "refusal": None},
        "logprobs": None,
        "finish_reason": "stop",
    }]
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": request_json.get("model", "stub-model"),
        "system_fingerprint": "fp_stub",
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": CACHED_TOKENS, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": REASONING_TOKENS,
                                          "audio_tokens": 0},
        },
    }


_ERROR_TYPES = {400: ("invalid_request_error", None),
                401: ("invalid_request_error", "invalid_api_key"),
                403: ("invalid_request_error", "unsupported_country_region_territory"),
                404: ("invalid_request_error", "model_not_found"),
                429: ("requests", "rate_limit_exceeded"),
                500: ("server_error", None)}


def error_body(status: int, message: str) -> dict:
    """An error in OpenAI's format: ``{"error": {"message", "type", "param", "code"}}``."""
    kind, code = _ERROR_TYPES.get(status, ("server_error" if status >= 500
                                           else "invalid_request_error", None))
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def openai_stub(*, errors: Callable[[int, str], dict] = error_body,
                **kwargs) -> StubServer:
    """A StubServer speaking OpenAI's format; ``errors`` replaces ``error_body`` (to play
    a server with unusual errors), ``kwargs`` as for ``StubServer``."""
    return StubServer(ok_body, errors, **kwargs)
