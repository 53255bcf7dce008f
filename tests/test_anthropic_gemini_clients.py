"""The Anthropic and Gemini backends, through the real SDKs over real HTTP.

Each test points the provider's SDK at a stub server on 127.0.0.1 that speaks the
provider's wire format, so what is checked is what would go over the network: the path,
the key header, the body, and how every failure the server can produce is classified
(retried, fatal) by our client rather than by the SDK.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import anthropic
import httpx2
import pytest
from google.genai import errors as genai_errors

from balrog_worker.clients import anthropic_client, gemini_client
from balrog_worker.clients.anthropic_client import AnthropicClient
from balrog_worker.clients.base import Message, Request
from balrog_worker.clients.errors import (
    FatalModelError,
    RateLimitError,
    RetriesExhausted,
    TransientModelError,
)
from balrog_worker.clients.gemini_client import GeminiClient
from balrog_worker.clients.retry import RetryPolicy
from balrog_worker.config import ConfigError, Generation, ModelSpec
from tests.stubs import StubServer, anthropic_server, gemini_server

KEY = "test-key-123456"
KEY_VARIABLES = ("ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY", "BALROG_TEST_KEY")

MESSAGES = (
    Message("system", "You are playing a game. Answer with one action."),
    Message("user", "You see a door to the north."),
    Message("assistant", "north"),
    Message("user", "The door is locked. What now?"),
)
REQUEST = Request(messages=MESSAGES, valid_actions=("north", "south"), seed=1234)


@dataclass(frozen=True)
class Provider:
    backend: str
    client_class: type
    stub: object  # the module with ok_body / error_body
    key_variable: str  # the default variable the tests set
    model: str

    def spec(self, url: str, **overrides) -> ModelSpec:
        fields = {"name": f"{self.backend}-test", "backend": self.backend, "model": self.model,
                  "base_url": url, "timeout_s": 5.0, "max_retries": 5,
                  "generation": Generation(temperature=0.3, max_tokens=64)}
        return ModelSpec(**{**fields, **overrides})

    def client(self, url: str, *, max_retries: int = 5, **overrides):
        client = self.client_class(self.spec(url, max_retries=max_retries, **overrides))
        client.policy = RetryPolicy(max_retries=max_retries, base_delay_s=0.01)
        return client

    def server(self, **kwargs) -> StubServer:
        return StubServer(self.stub.ok_body, self.stub.error_body, **kwargs)


ANTHROPIC = Provider("anthropic", AnthropicClient, anthropic_server, "ANTHROPIC_API_KEY",
                     "claude-test-1")
GEMINI = Provider("gemini", GeminiClient, gemini_server, "GOOGLE_API_KEY", "gemini-test-1")
PROVIDERS = pytest.mark.parametrize("provider", [ANTHROPIC, GEMINI], ids=lambda p: p.backend)


def sent_key(provider: Provider, sent: dict) -> str | None:
    """The key as the SDK put it on the wire. google-genai uses ``x-goog-api-key``;
    anthropic 2.x sends ``Authorization: Bearer`` (older releases used ``x-api-key``,
    which the API still takes). Never in the URL."""
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert "key=" not in sent["path"]
    if provider is GEMINI:
        return headers.get("x-goog-api-key")
    if "x-api-key" in headers:
        return headers["x-api-key"]
    scheme, _, token = headers.get("authorization", "").partition(" ")
    return token if scheme == "Bearer" else None


@pytest.fixture(autouse=True)
def keys(monkeypatch):
    """Only the fake key of the test is in the environment, never a real one."""
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    monkeypatch.setenv("GOOGLE_API_KEY", KEY)


# --- a normal call: what goes over the wire and what comes back -------------------------


def test_anthropic_request_and_usage():
    with ANTHROPIC.server(answer="go north") as stub:
        completion = ANTHROPIC.client(stub.url).complete(REQUEST)
    assert completion.text == "go north"
    total = (anthropic_server.UNCACHED_INPUT_TOKENS + anthropic_server.CACHE_READ_TOKENS
             + anthropic_server.CACHE_WRITE_TOKENS)
    assert completion.input_tokens == total  # cache reads and writes are input too
    assert completion.cached_input_tokens == anthropic_server.CACHE_READ_TOKENS
    assert completion.output_tokens == 2
    assert completion.retries == 0 and completion.latency_s > 0

    [sent] = stub.requests
    assert sent["path"] == "/v1/messages"
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert sent_key(ANTHROPIC, sent) == KEY
    assert headers["anthropic-version"]
    assert "x-stainless-retry-count" not in headers or headers["x-stainless-retry-count"] == "0"
    body = sent["body"]
    assert body["model"] == "claude-test-1"
    assert body["system"] == "You are playing a game. Answer with one action."
    assert body["messages"] == [
        {"role": "user", "content": "You see a door to the north."},
        {"role": "assistant", "content": "north"},
        {"role": "user", "content": "The door is locked. What now?"},
    ]
    assert body["temperature"] == 0.3 and body["max_tokens"] == 64
    assert "top_p" not in body and "seed" not in body  # the API has no seed


def test_gemini_request_and_usage():
    with GEMINI.server(answer="go north") as stub:
        completion = GEMINI.client(stub.url).complete(REQUEST)
    assert completion.text == "go north"
    assert completion.input_tokens == gemini_server.PROMPT_TOKENS
    assert completion.cached_input_tokens == gemini_server.CACHED_TOKENS
    assert completion.reasoning_tokens == gemini_server.THOUGHTS_TOKENS
    # thinking is billed as output: it counts there, as reasoning does elsewhere
    assert completion.output_tokens == 2 + gemini_server.THOUGHTS_TOKENS
    assert completion.retries == 0

    [sent] = stub.requests
    # The API version is the SDK's (v1beta before google-genai 3); never a ?key= query.
    assert re.fullmatch(r"/v1(beta)?/models/gemini-test-1:generateContent", sent["path"])
    assert sent_key(GEMINI, sent) == KEY
    body = sent["body"]
    assert body["systemInstruction"]["parts"] == [
        {"text": "You are playing a game. Answer with one action."}]
    assert [(turn["role"], turn["parts"][0]["text"]) for turn in body["contents"]] == [
        ("user", "You see a door to the north."),
        ("model", "north"),
        ("user", "The door is locked. What now?"),
    ]
    config = body["generationConfig"]
    assert config["temperature"] == 0.3 and config["maxOutputTokens"] == 64
    assert config["seed"] == 1234 and "topP" not in config


def test_anthropic_default_sampling_is_left_to_the_api():
    """SDK 1.x takes no temperature; recent models reject any but the default. A spec at
    the defaults sends neither field, so it is valid for every model."""
    with ANTHROPIC.server() as stub:
        ANTHROPIC.client(stub.url, generation=Generation(max_tokens=16)).complete(REQUEST)
    body = stub.requests[0]["body"]
    assert "temperature" not in body and "top_p" not in body
    assert body["max_tokens"] == 16


@PROVIDERS
def test_top_p_is_sent_when_set(provider):
    spec_generation = Generation(temperature=0.5, max_tokens=32, top_p=0.9)
    with provider.server() as stub:
        provider.client(stub.url, generation=spec_generation).complete(REQUEST)
    body = stub.requests[0]["body"]
    sent = body["top_p"] if provider is ANTHROPIC else body["generationConfig"]["topP"]
    assert sent == pytest.approx(0.9)


def test_turns_are_merged_and_every_system_message_joins_the_system_prompt():
    messages = (Message("system", "rules"), Message("user", "a"), Message("user", "b"),
                Message("system", "more rules"), Message("assistant", "c"))
    system, turns = anthropic_client.to_messages(messages)
    assert system == "rules\n\nmore rules"
    assert turns == [{"role": "user", "content": "a\n\nb"},
                     {"role": "assistant", "content": "c"}]
    system, contents = gemini_client.to_contents(messages)
    assert system == "rules\n\nmore rules"
    assert [(c.role, c.parts[0].text) for c in contents] == [("user", "a\n\nb"), ("model", "c")]


@PROVIDERS
def test_custom_key_variable(provider, monkeypatch):
    monkeypatch.setenv("BALROG_TEST_KEY", "other-key-987654")
    with provider.server() as stub:
        provider.client(stub.url, api_key_env="BALROG_TEST_KEY").complete(REQUEST)
    assert sent_key(provider, stub.requests[0]) == "other-key-987654"


def test_gemini_key_from_gemini_api_key(monkeypatch):
    monkeypatch.delenv("GOOGLE_API_KEY")
    monkeypatch.setenv("GEMINI_API_KEY", "gemini-key-555555")
    with GEMINI.server() as stub:
        GEMINI.client(stub.url).complete(REQUEST)
    assert sent_key(GEMINI, stub.requests[0]) == "gemini-key-555555"


# --- failures that are retried ----------------------------------------------------------


@PROVIDERS
@pytest.mark.parametrize("behaviour", ["429", "500", "drop", "malformed", "empty"])
def test_transient_failure_is_retried(provider, behaviour):
    with provider.server(script=[behaviour], answer="south") as stub:
        completion = provider.client(stub.url).complete(REQUEST)
    assert completion.text == "south"
    assert completion.retries == 1
    assert len(stub.requests) == 2  # the SDK did not retry on its own


@PROVIDERS
def test_every_transient_failure_in_a_row_is_counted(provider):
    script = ["429", "500", "drop", "malformed", "empty"]
    with provider.server(script=script) as stub:
        completion = provider.client(stub.url, max_retries=5).complete(REQUEST)
    assert completion.retries == 5
    assert len(stub.requests) == 6


@PROVIDERS
def test_hang_times_out_and_is_retried(provider):
    with provider.server(script=["hang"], hang_s=2.0, answer="east") as stub:
        client = provider.client(stub.url, timeout_s=0.5)
        start = time.perf_counter()
        completion = client.complete(REQUEST)
        elapsed = time.perf_counter() - start
    assert completion.text == "east" and completion.retries == 1
    assert len(stub.requests) == 2
    assert elapsed < 1.8  # the timeout cut the hung request, it did not wait it out


@PROVIDERS
def test_timeout_is_a_transient_error(provider):
    with provider.server(script=["hang"], hang_s=2.0) as stub:
        client = provider.client(stub.url, timeout_s=0.5)
        with pytest.raises(TransientModelError, match="timed out"):
            client._call(REQUEST)


@PROVIDERS
def test_rate_limit_reads_the_retry_after(provider):
    with provider.server(script=["429"]) as stub:
        client = provider.client(stub.url)
        with pytest.raises(RateLimitError) as caught:
            client._call(REQUEST)
    assert caught.value.status == 429
    assert caught.value.retry_after == 0.0  # the stub says "retry now", not "unknown"


@PROVIDERS
def test_retries_exhausted(provider):
    with provider.server(script=["500"] * 10) as stub:
        client = provider.client(stub.url, max_retries=2)
        with pytest.raises(RetriesExhausted) as caught:
            client.complete(REQUEST)
    assert caught.value.attempts == 3
    assert isinstance(caught.value.last, TransientModelError)
    assert caught.value.status == 500
    assert len(stub.requests) == 3


# --- failures that are not retried ------------------------------------------------------


@PROVIDERS
@pytest.mark.parametrize("behaviour", ["401", "400"])
def test_client_errors_are_fatal(provider, behaviour):
    with provider.server(script=[behaviour]) as stub:
        client = provider.client(stub.url)
        with pytest.raises(FatalModelError) as caught:
            client.complete(REQUEST)
    assert caught.value.status == int(behaviour)
    assert len(stub.requests) == 1


@PROVIDERS
def test_prompt_too_long_is_fatal(provider):
    message = ("prompt is too long: 250000 tokens > 200000 maximum" if provider is ANTHROPIC
               else "The input token count (1200000) exceeds the maximum number of tokens "
                    "allowed (1048576).")
    stub = StubServer(provider.stub.ok_body,
                      lambda status, _: provider.stub.error_body(status, message),
                      script=["400"])
    with stub, pytest.raises(FatalModelError, match="prompt too long"):
        provider.client(stub.url).complete(REQUEST)
    assert len(stub.requests) == 1


@PROVIDERS
def test_missing_key_names_the_variables(provider, monkeypatch):
    for variable in KEY_VARIABLES:
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(ConfigError) as caught:
        provider.client("http://127.0.0.1:9")
    expected = ("ANTHROPIC_API_KEY",) if provider is ANTHROPIC else (
        "GOOGLE_API_KEY", "GEMINI_API_KEY")
    for variable in expected:
        assert variable in str(caught.value)
    with pytest.raises(ConfigError, match="BALROG_TEST_KEY"):
        provider.client("http://127.0.0.1:9", api_key_env="BALROG_TEST_KEY")


@PROVIDERS
def test_spec_without_model_or_with_constrained_actions_is_rejected(provider):
    with pytest.raises(ConfigError, match="needs 'model'"):
        provider.client("http://127.0.0.1:9", model=None)
    with pytest.raises(ConfigError, match="constrain_actions"):
        provider.client("http://127.0.0.1:9", constrain_actions=True)


@PROVIDERS
@pytest.mark.parametrize("behaviour", ["401", "500"])
def test_key_never_appears_in_an_error(provider, behaviour):
    """Even a server that echoes the key back in its error message does not get it into
    ours (fatal at once, or after every retry failed)."""
    stub = StubServer(provider.stub.ok_body,
                      lambda status, message: provider.stub.error_body(
                          status, f"{message} for key {KEY}"),
                      script=[behaviour] * 3)
    with stub:
        client = provider.client(stub.url, max_retries=1)
        with pytest.raises((FatalModelError, RetriesExhausted)) as caught:
            client.complete(REQUEST)
    error = caught.value
    for text in (str(error), repr(error), str(getattr(error, "last", ""))):
        assert KEY not in text
    assert "***" in str(error)  # the echoed key was there, and was redacted


@pytest.mark.parametrize(("status", "expected"), [
    (403, FatalModelError), (404, FatalModelError), (408, TransientModelError),
    (503, TransientModelError), (529, TransientModelError)])
def test_status_classification(status, expected):
    """Statuses the stub has no behaviour for (529 is Anthropic's "overloaded")."""
    request = httpx2.Request("POST", "http://127.0.0.1/v1/messages")
    response = httpx2.Response(status, request=request)
    body = anthropic_server.error_body(status, "nope")
    error = anthropic_client.translate(anthropic.APIStatusError("nope", response=response,
                                                                body=body))
    assert type(error) is expected and error.status == status
    error = gemini_client.translate(genai_errors.APIError(status,
                                                          gemini_server.error_body(status, "no")))
    assert type(error) is expected and error.status == status


# --- Retry-After parsing ----------------------------------------------------------------


def test_anthropic_retry_after_forms():
    from balrog_worker.clients.retry import retry_after_seconds as parse

    assert parse({"retry-after": "3"}) == 3.0
    assert parse({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse({}) is None and parse({"retry-after": "soon"}) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= parse({"retry-after": later}) <= 31


def test_gemini_retry_after_from_retry_info():
    body = gemini_server.error_body(429, "quota")
    body["error"]["details"][0]["retryDelay"] = "12.5s"

    class Error:  # the two attributes of genai's APIError that are read
        details = body
        response = None

    assert gemini_client.parse_retry_after(Error()) == 12.5
    Error.details = {"error": {"code": 429}}
    assert gemini_client.parse_retry_after(Error()) is None

