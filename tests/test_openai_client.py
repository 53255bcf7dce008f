"""The OpenAI-compatible backends through the real ``openai`` SDK over real HTTP.

Every test talks to a server on 127.0.0.1: a scripted stub (``tests.stubs``) for the
failure modes, and, marked slow, llama-cpp-python's OpenAI-compatible server running the
embedded model. The keys are fake; nothing leaves this machine.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace

import pytest

from balrog_worker.clients.base import Message, Request
from balrog_worker.clients.errors import FatalModelError, ModelError, RetriesExhausted
from balrog_worker.clients.grammar import actions_grammar
from balrog_worker.clients.openai_client import OpenAIClient
from balrog_worker.clients.retry import RetryPolicy
from balrog_worker.clients.retry import retry_after_seconds as retry_after
from balrog_worker.config import ConfigError, Generation, ModelSpec
from tests.stubs.openai_server import CACHED_TOKENS, REASONING_TOKENS, openai_stub

KEY = "sk-test-123456"
ACTIONS = ("turn left", "turn right", "go forward")
REQUEST = Request(messages=(Message("system", "You play a grid game."),
                            Message("user", "Pick an action.")),
                  valid_actions=ACTIONS, seed=1234)


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch):
    """A fake key in the environment; no real one can leak into or out of a test."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def make_client(url: str, *, backend: str = "openai", max_retries: int = 3,
                **spec_fields) -> OpenAIClient:
    """A client for the stub at ``url`` that retries almost at once."""
    spec = ModelSpec(name="m", backend=backend, model="gpt-test", base_url=f"{url}/v1",
                     max_retries=max_retries,
                     generation=Generation(temperature=0.3, max_tokens=17, top_p=0.9),
                     **{"timeout_s": 5.0, **spec_fields})
    client = OpenAIClient(spec)
    client.policy = RetryPolicy(max_retries=max_retries, base_delay_s=0.01)
    return client


def test_a_normal_call_returns_the_text_and_the_token_counts():
    with openai_stub(answer="turn left") as stub:
        completion = make_client(stub.url).complete(REQUEST)
    assert completion.text == "turn left"
    assert completion.input_tokens > CACHED_TOKENS
    assert completion.output_tokens == 2 + REASONING_TOKENS  # two words + reasoning
    assert completion.cached_input_tokens == CACHED_TOKENS
    assert completion.reasoning_tokens == REASONING_TOKENS
    assert completion.retries == 0
    assert completion.latency_s > 0


def test_the_request_carries_the_spec_the_seed_and_the_key():
    with openai_stub() as stub:
        make_client(stub.url).complete(REQUEST)
    (sent,) = stub.requests
    assert sent["path"] == "/v1/chat/completions"
    body = sent["body"]
    assert body["model"] == "gpt-test"
    assert body["messages"] == [{"role": "system", "content": "You play a grid game."},
                                {"role": "user", "content": "Pick an action."}]
    assert body["seed"] == 1234
    assert body["temperature"] == 0.3
    assert body["top_p"] == 0.9
    # OpenAI's reasoning models reject the deprecated max_tokens.
    assert body["max_completion_tokens"] == 17 and "max_tokens" not in body
    assert "guided_choice" not in body and "grammar" not in body
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize("backend", ["vllm", "openai_compatible"])
def test_local_servers_get_max_tokens_and_a_placeholder_key(backend, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    with openai_stub() as stub:
        make_client(stub.url, backend=backend).complete(REQUEST)
    (sent,) = stub.requests
    assert sent["body"]["max_tokens"] == 17 and "max_completion_tokens" not in sent["body"]
    headers = {name.lower(): value for name, value in sent["headers"].items()}
    assert headers["authorization"] == "Bearer EMPTY"


def test_a_local_server_uses_the_key_named_by_api_key_env(monkeypatch):
    monkeypatch.setenv("VLLM_API_KEY", "vllm-secret-key")
    with openai_stub() as stub:
        make_client(stub.url, backend="vllm", api_key_env="VLLM_API_KEY").complete(REQUEST)
    headers = {name.lower(): value for name, value in stub.requests[0]["headers"].items()}
    assert headers["authorization"] == "Bearer vllm-secret-key"


@pytest.mark.parametrize("failures", [["429"], ["500"], ["drop"], ["malformed"], ["empty"],
                                      ["429", "500", "drop", "malformed"]])
def test_transient_failures_are_retried_then_succeed(failures):
    with openai_stub(script=list(failures), answer="go forward") as stub:
        completion = make_client(stub.url, max_retries=len(failures)).complete(REQUEST)
    assert completion.text == "go forward"
    assert completion.retries == len(failures)
    assert len(stub.requests) == len(failures) + 1
    # every attempt is the same request (same seed: a retry does not change the answer)
    assert all(sent["body"] == stub.requests[0]["body"] for sent in stub.requests)


def test_a_hang_past_the_timeout_is_retried():
    with openai_stub(script=["hang"], hang_s=2.0) as stub:
        start = time.perf_counter()
        completion = make_client(stub.url, timeout_s=0.5).complete(REQUEST)
        elapsed = time.perf_counter() - start
    assert completion.retries == 1
    assert len(stub.requests) == 2
    assert 0.5 <= elapsed < 1.8  # gave up on the hung call, did not wait for it


@pytest.mark.parametrize("status", ["400", "401"])
def test_client_errors_are_fatal_and_not_retried(status):
    with openai_stub(script=[status]) as stub, pytest.raises(FatalModelError) as caught:
        make_client(stub.url).complete(REQUEST)
    assert caught.value.status == int(status)
    assert len(stub.requests) == 1
    assert KEY not in str(caught.value)


def test_retries_exhausted_after_max_retries_plus_one_attempts():
    with openai_stub(script=["500"] * 10) as stub, pytest.raises(RetriesExhausted) as caught:
        make_client(stub.url, max_retries=2).complete(REQUEST)
    assert len(stub.requests) == 3
    assert caught.value.attempts == 3
    assert caught.value.status == 500
    assert KEY not in str(caught.value)


def test_out_of_quota_is_fatal_although_it_is_a_429():
    def error_body(status, message):
        return {"error": {"message": "You exceeded your current quota",
                          "type": "insufficient_quota", "param": None,
                          "code": "insufficient_quota"}}

    stub = openai_stub(errors=error_body, script=["429"])
    with stub, pytest.raises(FatalModelError) as caught:
        make_client(stub.url).complete(REQUEST)
    assert caught.value.status == 429
    assert len(stub.requests) == 1


def test_a_missing_openai_key_is_a_config_error_naming_the_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.setenv("OTHER_KEY", KEY)
    spec = ModelSpec(name="gpt", backend="openai", model="gpt-test",
                     base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="OPENAI_API_KEY") as caught:
        OpenAIClient(spec)
    assert KEY not in str(caught.value)
    with pytest.raises(ConfigError, match="MY_KEY"):
        OpenAIClient(replace(spec, api_key_env="MY_KEY"))


def test_the_key_never_appears_in_an_error_even_when_the_server_echoes_it(monkeypatch):
    """A key under a variable ``errors.redact`` does not know, echoed back by the server
    in every error (as some proxies do), must still not reach any message."""
    secret = "custom-secret-abcdef"
    monkeypatch.setenv("MY_LLM_KEY", secret)

    def error_body(status, message):
        return {"error": {"message": f"{message}: key {secret} refused", "type": "x",
                          "param": None, "code": None}}

    errors: list[ModelError] = []
    with openai_stub(errors=error_body, hang_s=0.6) as stub:
        client = make_client(stub.url, backend="openai_compatible", max_retries=2,
                             api_key_env="MY_LLM_KEY", timeout_s=0.2)
        for script in (["401"], ["400"], ["500"] * 3, ["429"] * 3, ["drop"] * 3,
                       ["malformed"] * 3, ["hang"] * 3):
            stub.script = list(script)
            with pytest.raises(ModelError) as caught:
                client.complete(REQUEST)
            errors.append(caught.value)
    headers = {name.lower(): value for name, value in stub.requests[0]["headers"].items()}
    assert headers["authorization"] == f"Bearer {secret}"
    for error in errors:
        for text in (str(error), repr(error), str(getattr(error, "last", ""))):
            assert secret not in text
        assert error.__cause__ is None or secret not in str(error.__cause__)
    assert "HTTP 401" in str(errors[0]) and "***" in str(errors[0])


def test_constrain_actions_sends_guided_choice_to_vllm():
    with openai_stub() as stub:
        make_client(stub.url, backend="vllm", constrain_actions=True).complete(REQUEST)
    assert stub.requests[0]["body"]["guided_choice"] == list(ACTIONS)


def test_constrain_actions_sends_a_grammar_to_an_openai_compatible_server():
    with openai_stub() as stub:
        make_client(stub.url, backend="openai_compatible",
                    constrain_actions=True).complete(REQUEST)
    body = stub.requests[0]["body"]
    assert body["grammar"] == 'root ::= "turn left" | "turn right" | "go forward"'
    assert "guided_choice" not in body


def test_constrain_actions_is_refused_for_openai_at_construction():
    spec = ModelSpec(name="gpt", backend="openai", model="gpt-test",
                     base_url="http://127.0.0.1:9/v1", constrain_actions=True)
    with pytest.raises(ConfigError, match="constrain_actions"):
        OpenAIClient(spec)


def test_local_backends_need_a_base_url():
    with pytest.raises(ConfigError, match="base_url"):
        OpenAIClient(ModelSpec(name="v", backend="vllm", model="qwen"))


def test_grammar_literals_are_escaped():
    assert actions_grammar(['say "hi"', "a\\b"]) == r'root ::= "say \"hi\"" | "a\\b"'


def test_retry_after_reads_seconds_milliseconds_and_dates():
    assert retry_after({"retry-after": "3"}) == 3.0
    assert retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0  # past
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


# --- the real llama.cpp OpenAI-compatible server ------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """llama-cpp-python's server with the embedded model on 127.0.0.1, killed afterwards
    whatever happens. Its log goes to a file: it writes ~170 KB while loading, which
    would fill a pipe nobody reads and stall the server before it ever listens."""
    pytest.importorskip("llama_cpp.server.app")
    from balrog_worker.clients.weights import resolve_gguf

    try:
        path = resolve_gguf("qwen2.5-coder-0.5b-instruct-q4_k_m")
    except Exception as error:  # weights not installed
        pytest.skip(f"embedded model unavailable: {error}")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(path), "--host",
             "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", "2"],
            stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"llama.cpp server exited {process.returncode}: {tail}")
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama.cpp server did not answer within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.kill()
        process.wait(timeout=10)


@pytest.mark.slow
def test_the_real_llama_cpp_server(llama_server):
    spec = ModelSpec(name="qwen", backend="openai_compatible", model="qwen",
                     base_url=f"{llama_server}/v1", timeout_s=60.0, max_retries=0,
                     generation=Generation(temperature=0.0, max_tokens=16))
    request = Request(messages=(Message("user", "Say hello in one word."),),
                      valid_actions=ACTIONS, seed=7)
    client = OpenAIClient(spec)
    try:
        completion = client.complete(request)
    finally:
        client.close()
    assert completion.text.strip()
    assert completion.input_tokens > 0 and completion.output_tokens > 0

    # The same question: only the grammar can turn a greeting into a move.
    constrained = OpenAIClient(replace(spec, constrain_actions=True))
    try:
        answer = constrained.complete(request)
    finally:
        constrained.close()
    assert answer.text in ACTIONS
    assert answer.output_tokens > 0
