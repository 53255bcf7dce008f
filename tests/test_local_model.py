"""The embedded model: real weights from the package index, real llama.cpp, real episodes."""

import hashlib
import signal
import subprocess
import sys

import pytest

from balrog_worker.cells import Cell
from balrog_worker.clients import make_client
from balrog_worker.clients.weights import CATALOG, DEFAULT_MODEL, WeightsError, resolve_gguf
from balrog_worker.config import AgentSpec, CellConfig, Generation, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl

pytestmark = pytest.mark.slow

QWEN = ModelSpec("qwen-0.5b", "local", model=DEFAULT_MODEL, n_ctx=4096, threads=2,
                 generation=Generation(temperature=0.7, max_tokens=8))


# A prompt as long as an episode's first one: llama.cpp builds that crash do so here.
_CANARY = """
from llama_cpp import Llama, llama_print_system_info
print(llama_print_system_info().decode(), flush=True)
llm = Llama(model_path={path!r}, n_ctx=4096, n_threads=2, verbose=False)
prompt = "You are in a grid world. " * 60 + "Answer with one action."
out = llm.create_chat_completion(messages=[{{"role": "user", "content": prompt}}],
                                 max_tokens=4, seed=0)
assert out["usage"]["prompt_tokens"] > 300, out["usage"]
"""


@pytest.fixture(scope="module", autouse=True)
def llama_cpp_survives_a_long_prompt():
    """Run one long prompt in a child process first: a llama.cpp build that crashes on
    this CPU then fails these tests with its build flags, instead of killing the suite."""
    code = _CANARY.format(path=str(resolve_gguf(DEFAULT_MODEL)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    if result.returncode != 0:
        cause = (f"signal {signal.Signals(-result.returncode).name}" if result.returncode < 0
                 else f"exit {result.returncode}: {result.stderr.strip()[-500:]}")
        pytest.fail(f"llama.cpp died on a long prompt ({cause}); its build: "
                    f"{result.stdout.strip()}. Rebuild it: see CMAKE_ARGS in the Makefile",
                    pytrace=False)


@pytest.fixture(scope="module")
def qwen():
    client = make_client(QWEN, cache_mode="off")  # every call really reaches llama.cpp
    yield client
    client.close()


def test_joined_weights_match_the_published_size_and_hash():
    path = resolve_gguf(DEFAULT_MODEL)
    model = CATALOG[DEFAULT_MODEL]
    assert path.stat().st_size == model.size == 491_400_064
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    assert digest.hexdigest() == model.sha256
    assert resolve_gguf(DEFAULT_MODEL) == path  # joined once, then reused


def test_unknown_models_and_missing_files_are_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="GGUF file not found"):
        resolve_gguf(str(tmp_path / "mine.gguf"))
    with pytest.raises(WeightsError, match="unknown local model 'llama-9000'"):
        resolve_gguf("llama-9000")


def test_a_user_gguf_path_is_used_as_is(tmp_path):
    own = tmp_path / "own.gguf"
    own.symlink_to(resolve_gguf(DEFAULT_MODEL))
    assert resolve_gguf(str(own)) == own


def test_a_real_episode_with_the_local_model(qwen, tmp_path):
    config = CellConfig(cell=Cell("qwen-0.5b", "naive", "babyai", "goto"), model=QWEN,
                        agent=AgentSpec("naive", "naive"), episodes=1, max_steps=4)
    report = run_cell(config, tmp_path / "a", client=qwen)
    assert (report.ran, report.failed) == (1, 0)
    steps, _ = read_jsonl(tmp_path / "a" / "steps.jsonl")
    episodes, _ = read_jsonl(tmp_path / "a" / "episodes.jsonl")
    assert len(steps) == 4 == episodes[0]["llm_calls"]
    assert all(s["completion"].strip() for s in steps)
    assert all(0 < s["output_tokens"] <= 8 for s in steps)
    # The prompt grows with the history: every step sees more tokens than the last.
    inputs = [s["input_tokens"] for s in steps]
    assert inputs == sorted(inputs) and inputs[0] > 100 and len(set(inputs)) == 4
    assert episodes[0]["input_tokens"] == sum(inputs)
    for step in steps:
        assert step["action"] == (step["candidate"] if step["valid"] else "go forward")

    # Same config, fresh directory: seeded sampling replays the same answers.
    run_cell(config, tmp_path / "b", client=qwen)
    again, _ = read_jsonl(tmp_path / "b" / "steps.jsonl")
    assert [s["completion"] for s in again] == [s["completion"] for s in steps]


def test_constrained_decoding_keeps_the_answer_inside_the_valid_actions():
    from dataclasses import replace

    from balrog_worker.clients.base import Message, Request

    client = make_client(replace(QWEN, constrain_actions=True), cache_mode="off")
    try:
        actions = ("turn left", "turn right", "go forward")
        request = Request((Message("user", "Tell me a story about a dragon."),), actions, 7)
        answer = client.complete(request).text
    finally:
        client.close()
    assert answer in actions
