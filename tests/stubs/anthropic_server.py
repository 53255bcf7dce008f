"""Bodies in the Anthropic Messages API's wire format, for ``StubServer``.

Token counts are fixed so tests can check how usage is read: the API reports cache reads
and writes apart from ``input_tokens``, so the client's total input is their sum.
"""

from __future__ import annotations

from tests.stubs import StubServer

UNCACHED_INPUT_TOKENS = 40
CACHE_READ_TOKENS = 100
CACHE_WRITE_TOKENS = 8

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}


def ok_body(request_json: dict, text: str, path: str) -> dict:
    """A Messages API response; no content blocks at all when ``text`` is empty (what
    the API sends when the model stops at once)."""
    return {
        "id": "msg_stub0001",
        "type": "message",
        "role": "assistant",
        "model": request_json.get("model", "claude-stub"),
        "content": [{"type": "text", "text": text}] if text else [],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {
            "input_tokens": UNCACHED_INPUT_TOKENS,
            "cache_creation_input_tokens": CACHE_WRITE_TOKENS,
            "cache_read_input_tokens": CACHE_READ_TOKENS,
            "output_tokens": max(len(text.split()), 1),
        },
    }


def error_body(status: int, message: str) -> dict:
    return {"type": "error",
            "error": {"type": ERROR_TYPES.get(status, "api_error"), "message": message}}


def server(**kwargs) -> StubServer:
    """A StubServer speaking the Messages API (``kwargs`` as for StubServer)."""
    return StubServer(ok_body, error_body, **kwargs)
