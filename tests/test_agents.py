"""Every agent through a real SDK against a stub server answering in its format (and in
broken formats), and the history windows as the server receives them."""

import pytest

from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl
from tests.stubs import StubServer, openai_server

GOOD = {
    "naive": "go forward",
    "robust_naive": "Sure. <|ACTION|>go forward<|END|>",
    "cot": "The box is ahead of me, so I walk on.\nACTION: go forward",
    "robust_cot": "The box is ahead of me.\n<|ACTION|>Go Forward.<|END|>",
    "planner": "PLAN: walk to the box, then face it\nACTION: go forward",
    "few_shot": "`go forward`",
}
BROKEN = {
    "naive": "I would like to go forward please",
    "robust_naive": "<|ACTION|>fly away<|END|>",
    "cot": "The box is ahead of me but I cannot decide.",
    "robust_cot": "Thinking...\n<|ACTION|><|END|>",
    "planner": "PLAN: think more",
    "few_shot": "???",
}
REASONING = {"cot": "The box is ahead of me, so I walk on.",
             "robust_cot": "The box is ahead of me.", "planner": "walk to the box, then face it"}


@pytest.fixture(scope="module")
def demos(tmp_path_factory):
    """Recorded scripted episodes: the few-shot agent's demonstrations."""
    root = tmp_path_factory.mktemp("demos")
    config = CellConfig(cell=Cell("scripted", "naive", "babyai", "goto"),
                        model=BUILTIN_MODELS["scripted"], agent=AgentSpec("naive", "naive"),
                        episodes=2, max_steps=None)
    run_cell(config, root / "scripted__naive__babyai__goto")
    return root


def run_agent(tmp_path, monkeypatch, kind, answer, demos, steps=3, **agent_fields):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agents-123456")
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(tmp_path / "cache"))
    agent = AgentSpec(kind, kind, demonstrations=str(demos), **agent_fields)
    with StubServer(openai_server.ok_body, openai_server.error_body, answer=answer) as stub:
        model = ModelSpec("stub", "openai", model="gpt-test", base_url=stub.url + "/v1")
        config = CellConfig(cell=Cell("stub", kind, "babyai", "goto"), model=model,
                            agent=agent, episodes=1, max_steps=steps,
                            cache="off")
        run_cell(config, tmp_path / "out")
        requests = [r["body"] for r in stub.requests]
    records, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    episode = read_jsonl(tmp_path / "out" / "episodes.jsonl")[0][0]
    return records, episode, requests


@pytest.mark.parametrize("kind", list(GOOD))
def test_each_agent_reads_its_own_format(kind, tmp_path, monkeypatch, demos):
    steps, episode, requests = run_agent(tmp_path, monkeypatch, kind, GOOD[kind], demos)
    assert episode["invalid_actions"] == 0 and not episode["failed"]
    assert all(s["valid"] and s["candidate"] == s["action"] == "go forward" for s in steps)
    assert all(s["completion"] == GOOD[kind] for s in steps)
    assert all(s["reasoning"] == REASONING.get(kind) for s in steps)
    system = requests[0]["messages"][0]["content"]
    assert system.startswith("You are an agent in BabyAI")
    if kind == "few_shot":
        assert "Examples of good play" in requests[0]["messages"][1]["content"]
    if kind == "planner":  # the plan comes back with the next observation
        assert "Your plan so far: walk to the box" in requests[1]["messages"][-1]["content"]


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_answers_become_counted_invalid_actions(kind, tmp_path, monkeypatch, demos):
    steps, episode, _ = run_agent(tmp_path, monkeypatch, kind, BROKEN[kind], demos)
    assert episode["invalid_actions"] == len(steps) == 3
    assert all(not s["valid"] and s["action"] == "go forward" for s in steps)
    assert all(s["completion"] == BROKEN[kind] for s in steps)


def test_history_windows_hold_exactly_the_configured_turns(tmp_path, monkeypatch, demos):
    _, _, requests = run_agent(tmp_path, monkeypatch, "cot", GOOD["cot"], demos,
                               max_text_history=2, max_cot_history=1, steps=5)
    for number, body in enumerate(requests):
        messages = body["messages"]
        past = min(number, 2)
        assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * past + [
            "user"]
        assistants = [m["content"] for m in messages if m["role"] == "assistant"]
        whole = [a for a in assistants if "so I walk on" in a]
        assert len(whole) == min(past, 1)  # only the newest answer keeps its reasoning
        assert all(a == "go forward" for a in assistants if a not in whole)
        assert messages[-1]["content"].count("Current observation:") == 1
    # While the window fills, each prompt starts with the previous one's system prompt and
    # first observation (the prefix a provider cache can reuse).
    assert requests[2]["messages"][:2] == requests[1]["messages"][:2]


def test_a_vision_agent_sends_exactly_its_image_window(tmp_path, monkeypatch, demos):
    _, _, requests = run_agent(tmp_path, monkeypatch, "naive", GOOD["naive"], demos,
                               max_text_history=3, max_image_history=2, steps=4)
    for number, body in enumerate(requests):
        per_message = [sum(part.get("type") == "image_url" for part in m["content"])
                       if isinstance(m["content"], list) else 0 for m in body["messages"]]
        assert sum(per_message) == min(number + 1, 2)
        assert per_message[-1] == 1  # the current observation always carries its frame
        if number:
            assert per_message[-3] == 1  # and the newest past one, nothing older
