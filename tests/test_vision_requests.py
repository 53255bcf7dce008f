"""Images on the wire: each API client sends ``Message.images`` in its provider's format.

Every check is made at the stub server (``stub.requests[i]["body"]``), i.e. on what the
real SDK put over HTTP: how many images arrived, in which message, in which envelope, and
that their base64 decodes back to the very PNG bytes the request carried. Text-only
requests must go out exactly as before images existed.
"""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from balrog_worker.clients.anthropic_client import AnthropicClient
from balrog_worker.clients.base import Message, Request
from balrog_worker.clients.errors import FatalModelError
from balrog_worker.clients.gemini_client import GeminiClient
from balrog_worker.clients.images import PNG_SIGNATURE, encode_png
from balrog_worker.clients.local import refuse_images
from balrog_worker.clients.openai_client import OpenAIClient
from balrog_worker.clients.retry import RetryPolicy
from balrog_worker.config import ConfigError, Generation, ModelSpec
from tests.stubs import StubServer, anthropic_server, gemini_server, openai_server

KEY = "test-key-123456"


def frame(seed: int, height: int = 6, width: int = 9) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


# Five distinct PNGs: one shown with the first observation, none with the second, three
# with the current one (oldest first), and one spare.
PNGS = tuple(encode_png(frame(seed)) for seed in range(5))
SYSTEM = "You are playing a game. Answer with one action."
VISION_MESSAGES = (
    Message("system", SYSTEM),
    Message("user", "Step 1: a door to the north.", (PNGS[0],)),
    Message("assistant", "north"),
    Message("user", "Step 2: the door is locked."),
    Message("assistant", "south"),
    Message("user", "Step 3: a key lies here. What now?", (PNGS[1], PNGS[2], PNGS[3])),
)
TEXT_MESSAGES = tuple(Message(m.role, m.content) for m in VISION_MESSAGES)
VALID = ("north", "south")


def request(messages: tuple[Message, ...]) -> Request:
    return Request(messages=messages, valid_actions=VALID, seed=1234)


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    """Fake keys only; no real key or endpoint from the environment reaches a test."""
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY",
                     "GEMINI_API_KEY", "ANTHROPIC_BASE_URL", "GOOGLE_GENAI_USE_VERTEXAI"):
        monkeypatch.delenv(variable, raising=False)
    for variable in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY"):
        monkeypatch.setenv(variable, KEY)


def make_client(backend: str, url: str):
    classes = {"openai": OpenAIClient, "vllm": OpenAIClient,
               "anthropic": AnthropicClient, "gemini": GeminiClient}
    spec = ModelSpec(name=f"{backend}-vision", backend=backend, model=f"{backend}-test-1",
                     base_url=f"{url}/v1" if classes[backend] is OpenAIClient else url,
                     timeout_s=5.0, max_retries=0,
                     generation=Generation(temperature=0.3, max_tokens=32))
    client = classes[backend](spec)
    client.policy = RetryPolicy(max_retries=0, base_delay_s=0.01)
    return client


def send(backend: str, stub_module, *requests: Request) -> list[dict]:
    """The JSON bodies the stub received for ``requests``, sent in order by one client."""
    with StubServer(stub_module.ok_body, stub_module.error_body, answer="north") as stub:
        client = make_client(backend, stub.url)
        try:
            for each in requests:
                assert client.complete(each).text == "north"
        finally:
            client.close()
    assert len(stub.requests) == len(requests)
    return [sent["body"] for sent in stub.requests]


def test_encode_png_is_a_lossless_deterministic_png():
    image = frame(7, 5, 11)
    data = encode_png(image)
    assert data.startswith(PNG_SIGNATURE)
    assert data == encode_png(image.copy())
    decoded = Image.open(io.BytesIO(data))
    assert decoded.mode == "RGB" and decoded.size == (11, 5)
    assert np.array_equal(np.asarray(decoded), image)
    assert len(set(PNGS)) == len(PNGS)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 4), np.uint8),
                                 np.zeros((4, 4, 3), np.float32), np.zeros((0, 4, 3), np.uint8)])
def test_encode_png_refuses_what_is_not_an_rgb_frame(bad):
    with pytest.raises(ValueError, match="frame"):
        encode_png(bad)


# --- OpenAI chat completions (openai, vllm, openai_compatible) --------------------------


def openai_images(content) -> list[bytes]:
    """The PNGs in an OpenAI message's content parts, checking each part's shape."""
    if isinstance(content, str):
        return []
    found = []
    for part in content:
        if part["type"] == "text":
            continue
        assert part["type"] == "image_url" and set(part) == {"type", "image_url"}
        url = part["image_url"]["url"]
        prefix = "data:image/png;base64,"
        assert url.startswith(prefix)
        found.append(base64.b64decode(url[len(prefix):], validate=True))
    return found


@pytest.mark.parametrize("backend", ["openai", "vllm"])
def test_openai_sends_image_url_parts_after_the_text(backend):
    [vision, text] = send(backend, openai_server, request(VISION_MESSAGES),
                          request(TEXT_MESSAGES))
    sent = vision["messages"]
    assert [m["role"] for m in sent] == [m.role for m in VISION_MESSAGES]
    assert [openai_images(m["content"]) for m in sent] == [
        [], [PNGS[0]], [], [], [], [PNGS[1], PNGS[2], PNGS[3]]]
    # Messages without images stay plain strings; with images, text first, then images.
    for message, wire in zip(VISION_MESSAGES, sent, strict=True):
        if not message.images:
            assert wire["content"] == message.content
            continue
        assert wire["content"][0] == {"type": "text", "text": message.content}
        assert [part["type"] for part in wire["content"]] == \
            ["text"] + ["image_url"] * len(message.images)
    # The text-only request is what it always was: every content a plain string.
    assert text["messages"] == [{"role": m.role, "content": m.content}
                                for m in TEXT_MESSAGES]
    assert {k: v for k, v in vision.items() if k != "messages"} == \
        {k: v for k, v in text.items() if k != "messages"}


def test_openai_images_without_text_send_no_empty_text_part():
    messages = (Message("user", "", (PNGS[4],)),)
    [body] = send("openai", openai_server, request(messages))
    [wire] = body["messages"]
    assert [part["type"] for part in wire["content"]] == ["image_url"]
    assert openai_images(wire["content"]) == [PNGS[4]]


# --- Anthropic Messages ------------------------------------------------------------------


def anthropic_images(content) -> list[bytes]:
    if isinstance(content, str):
        return []
    found = []
    for block in content:
        if block["type"] == "text":
            continue
        assert block["type"] == "image"
        source = block["source"]
        assert set(source) == {"type", "media_type", "data"}
        assert source["type"] == "base64" and source["media_type"] == "image/png"
        found.append(base64.b64decode(source["data"], validate=True))
    return found


def test_anthropic_sends_base64_image_blocks_before_the_text():
    [vision, text] = send("anthropic", anthropic_server, request(VISION_MESSAGES),
                          request(TEXT_MESSAGES))
    assert vision["system"] == text["system"] == SYSTEM
    sent = vision["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "user", "assistant", "user"]
    assert [anthropic_images(m["content"]) for m in sent] == [
        [PNGS[0]], [], [], [], [PNGS[1], PNGS[2], PNGS[3]]]
    for message, wire in zip(VISION_MESSAGES[1:], sent, strict=True):
        if not message.images:
            assert wire["content"] == message.content
            continue
        assert [block["type"] for block in wire["content"]] == \
            ["image"] * len(message.images) + ["text"]
        assert wire["content"][-1] == {"type": "text", "text": message.content}
    assert text["messages"] == [{"role": m.role, "content": m.content}
                                for m in TEXT_MESSAGES[1:]]


def test_anthropic_merges_consecutive_user_turns_with_their_images():
    # Two user messages in a row are one turn for the API; the images stay in order.
    messages = (Message("user", "first", (PNGS[0],)), Message("user", "second"),
                Message("user", "third", (PNGS[1], PNGS[2])))
    [body] = send("anthropic", anthropic_server, request(messages))
    [turn] = body["messages"]
    assert [(b["type"], b.get("text")) for b in turn["content"]] == [
        ("image", None), ("text", "first"), ("text", "second"),
        ("image", None), ("image", None), ("text", "third")]
    assert anthropic_images(turn["content"]) == [PNGS[0], PNGS[1], PNGS[2]]


# --- Gemini generateContent ---------------------------------------------------------------


def gemini_images(parts: list[dict]) -> list[bytes]:
    found = []
    for part in parts:
        if "text" in part:
            assert set(part) == {"text"}
            continue
        assert set(part) == {"inlineData"}
        inline = part["inlineData"]
        # google-genai writes the field as ``mime_type``; proto JSON (the API) reads it
        # under either name.
        assert {key: value for key, value in inline.items() if key != "data"} in (
            {"mime_type": "image/png"}, {"mimeType": "image/png"})
        # google-genai writes bytes as URL-safe base64, which the API accepts.
        found.append(base64.urlsafe_b64decode(inline["data"]))
    return found


def test_gemini_sends_inline_data_parts_before_the_text():
    [vision, text] = send("gemini", gemini_server, request(VISION_MESSAGES),
                          request(TEXT_MESSAGES))
    assert vision["systemInstruction"] == text["systemInstruction"]
    sent = vision["contents"]
    assert [c["role"] for c in sent] == ["user", "model", "user", "model", "user"]
    assert [gemini_images(c["parts"]) for c in sent] == [
        [PNGS[0]], [], [], [], [PNGS[1], PNGS[2], PNGS[3]]]
    for message, wire in zip(VISION_MESSAGES[1:], sent, strict=True):
        if not message.images:
            assert wire["parts"] == [{"text": message.content}]
            continue
        assert ["inlineData" in part for part in wire["parts"]] == \
            [True] * len(message.images) + [False]
        assert wire["parts"][-1] == {"text": message.content}
    assert text["contents"] == [
        {"role": "model" if m.role == "assistant" else "user", "parts": [{"text": m.content}]}
        for m in TEXT_MESSAGES[1:]]
    assert {k: v for k, v in vision.items() if k != "contents"} == \
        {k: v for k, v in text.items() if k != "contents"}


def test_gemini_merges_consecutive_user_turns_with_their_images():
    messages = (Message("user", "first", (PNGS[0],)), Message("user", "second"))
    [body] = send("gemini", gemini_server, request(messages))
    [turn] = body["contents"]
    assert [next(iter(part)) for part in turn["parts"]] == ["inlineData", "text", "text"]
    assert gemini_images(turn["parts"]) == [PNGS[0]]
    assert [part.get("text") for part in turn["parts"][1:]] == ["first", "second"]


# --- what no provider can be sent ----------------------------------------------------------


@pytest.mark.parametrize(("backend", "module"), [("openai", openai_server),
                                                 ("anthropic", anthropic_server),
                                                 ("gemini", gemini_server)])
@pytest.mark.parametrize(("messages", "error"), [
    ((Message("user", "look", (b"GIF89a not a png",)),), "not PNG data"),
    ((Message("system", "rules", (PNGS[0],)), Message("user", "look")),
     "images can only be sent with user messages, not 'system'"),
    ((Message("user", "look"), Message("assistant", "north", (PNGS[0],))),
     "images can only be sent with user messages, not 'assistant'"),
], ids=["not-png", "system-image", "assistant-image"])
def test_bad_images_fail_fatally_before_anything_is_sent(backend, module, messages, error):
    with StubServer(module.ok_body, module.error_body) as stub:
        client = make_client(backend, stub.url)
        with pytest.raises(FatalModelError, match=error):
            client.complete(request(messages))
        client.close()
    assert stub.requests == []


# --- the embedded llama.cpp model ----------------------------------------------------------


def test_the_local_backend_refuses_images_with_a_clear_error():
    refuse_images(request(TEXT_MESSAGES))  # text only: fine
    with pytest.raises(ConfigError, match=r"local backend .*text-only") as caught:
        refuse_images(request(VISION_MESSAGES))
    assert "\n" not in str(caught.value)


def test_the_local_client_checks_before_touching_the_model():
    from balrog_worker.clients.local import LlamaCppClient

    # No model loaded: ``complete`` must refuse before it reaches a llama.cpp context.
    client = LlamaCppClient.__new__(LlamaCppClient)
    with pytest.raises(ConfigError, match="text-only"):
        client.complete(request(VISION_MESSAGES))
