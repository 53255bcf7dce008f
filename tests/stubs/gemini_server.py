"""Bodies in the Gemini API's wire format (generateContent), for ``StubServer``.

Token counts are fixed so tests can check how usage is read: ``promptTokenCount``
includes the cached part, ``candidatesTokenCount`` excludes the thinking tokens.
"""

from __future__ import annotations

from tests.stubs import StubServer

PROMPT_TOKENS = 150
CACHED_TOKENS = 100
THOUGHTS_TOKENS = 7

STATUSES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
            404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 500: "INTERNAL",
            503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def ok_body(request_json: dict, text: str, path: str) -> dict:
    """A generateContent response; a candidate without parts when ``text`` is empty."""
    model = path.rsplit("/", 1)[-1].split(":", 1)[0]
    content: dict = {"role": "model"}
    if text:
        content["parts"] = [{"text": text}]
    candidates = max(len(text.split()), 1)
    return {
        "candidates": [{"content": content, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {
            "promptTokenCount": PROMPT_TOKENS,
            "candidatesTokenCount": candidates,
            "cachedContentTokenCount": CACHED_TOKENS,
            "thoughtsTokenCount": THOUGHTS_TOKENS,
            "totalTokenCount": PROMPT_TOKENS + candidates + THOUGHTS_TOKENS,
        },
        "modelVersion": model,
        "responseId": "stub-response-0001",
    }


def error_body(status: int, message: str) -> dict:
    """A google.rpc.Status error; a 429 carries RetryInfo as the real API's do."""
    error: dict = {"code": status, "message": message,
                   "status": STATUSES.get(status, "UNKNOWN")}
    if status == 429:
        error["details"] = [{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                             "retryDelay": "0s"}]
    return {"error": error}


def server(**kwargs) -> StubServer:
    """A StubServer speaking generateContent (``kwargs`` as for StubServer)."""
    return StubServer(ok_body, error_body, **kwargs)
