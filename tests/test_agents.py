"""Every agent through a real SDK against a stub server, held to BALROG's rules: how each
agent type reads an answer (``balrog/agents/*.py``), how the prompt is laid out
(``balrog/prompt_builder/history.py``) and where few-shot demonstrations come from."""

import random

import pytest

from balrog_worker import envs
from balrog_worker.agents import AGENTS, demonstrations_for
from balrog_worker.agents.demonstrations import demonstration_seeds
from balrog_worker.cells import Cell
from balrog_worker.clients.base import Completion
from balrog_worker.config import AgentSpec, CellConfig, ConfigError, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.seeding import episode_seed
from balrog_worker.store import read_jsonl
from tests.stubs import StubServer, openai_server

GOOD = {
    "naive": "go forward",
    "robust_naive": "Sure. <|ACTION|>go forward<|END|>",
    "cot": "The box is ahead of me, so I walk on.\nACTION: go forward",
    "robust_cot": "The box is ahead of me.\n<|ACTION|> go forward <|END|>",
    "planner": "PLAN: walk to the box, then face it\nACTION: go forward",
    "few_shot": "go forward.",  # BALROG's filter drops the full stop
}
BROKEN = {
    "naive": "I would like to go forward please",
    "robust_naive": "<|ACTION|>fly away<|END|>",
    "cot": "The box is ahead of me but I cannot decide.",
    "robust_cot": "Thinking...\n<|ACTION|><|END|>",
    "planner": "PLAN: think more",
    "few_shot": "???",
}
REASONING = {"cot": GOOD["cot"], "robust_cot": GOOD["robust_cot"],
             "planner": "walk to the box, then face it"}


def run_agent(tmp_path, monkeypatch, kind, answer, steps=3, **agent_fields):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-agents-123456")
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(tmp_path / "cache"))
    agent = AgentSpec(kind, kind, **agent_fields)
    with StubServer(openai_server.ok_body, openai_server.error_body, answer=answer) as stub:
        model = ModelSpec("stub", "openai", model="gpt-test", base_url=stub.url + "/v1")
        config = CellConfig(cell=Cell("stub", kind, "babyai", "goto"), model=model,
                            agent=agent, episodes=1, max_steps=steps, cache="off")
        run_cell(config, tmp_path / "out")
        requests = [r["body"] for r in stub.requests]
    records, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    episode = read_jsonl(tmp_path / "out" / "episodes.jsonl")[0][0]
    return records, episode, requests


@pytest.mark.parametrize("kind", list(GOOD))
def test_each_agent_reads_its_own_format(kind, tmp_path, monkeypatch):
    steps, episode, requests = run_agent(tmp_path, monkeypatch, kind, GOOD[kind])
    assert episode["invalid_actions"] == 0 and not episode["failed"]
    assert episode["answer_parsing"] == "strict"
    assert all(s["valid"] and s["candidate"] == s["action"] == "go forward" for s in steps)
    assert all(s["completion"] == GOOD[kind] for s in steps)
    assert all(s["reasoning"] == REASONING.get(kind) for s in steps)
    first = requests[0]["messages"][0]
    assert first["role"] == "user"  # BALROG sends the instructions as a user message
    assert "navigation game" in first["content"] and "go to the" in first["content"]
    if kind == "few_shot":
        assert requests[0]["messages"][1]["content"] == (
            "****** START OF DEMONSTRATION EPISODE 1 ******")
    if kind == "planner":  # the plan comes back with the next observation
        assert "Current Plan:\nwalk to the box, then face it" in (
            requests[1]["messages"][-1]["content"])


@pytest.mark.parametrize("kind", list(BROKEN))
def test_broken_answers_become_counted_invalid_actions(kind, tmp_path, monkeypatch):
    steps, episode, requests = run_agent(tmp_path, monkeypatch, kind, BROKEN[kind])
    assert episode["invalid_actions"] == len(steps) == 3
    assert all(not s["valid"] and s["action"] == "go forward" for s in steps)
    assert all(s["completion"] == BROKEN[kind] for s in steps)
    # BALROG's feedback opens the next observation, and stays in its history.
    note = ("\n\nYour previous output did not contain a valid action. Defaulted to action: "
            "go forward\n\nObservation:\n")
    assert steps[1]["observation"].startswith(f"Current Observation:\n{note}")
    assert any(m["content"].startswith(f"Observation:\n{note}")
               for m in requests[2]["messages"][:-1])
    # An answer the agent extracted is replayed as it was, valid or not; an empty one is
    # not replayed at all (BALROG passes no previous action then).
    history = [m for m in requests[2]["messages"] if "DEMONSTRATION" not in m["content"]]
    if kind == "few_shot":  # the history follows the demonstrations
        history = requests[2]["messages"][-4:]
    replayed = [m["content"] for m in history if m["role"] == "assistant"]
    if kind == "cot":  # the newest answer is replayed with its reasoning
        replayed[-1] = replayed[-1].removeprefix("Previous plan:\n").replace(
            BROKEN["cot"], steps[0]["candidate"])
    assert replayed == ([steps[0]["candidate"]] * 2 if steps[0]["candidate"] else [])


# answer -> (strict, lenient) reading by the naive agent, valid actions of BabyAI.
NAIVE_READINGS = {
    "go forward": ("go forward", "go forward"),
    "go forward.": ("go forward", "go forward"),  # BALROG keeps letters, spaces and ':'
    "Go forward": ("Go forward", "go forward"),  # case-sensitive match: invalid
    "`go forward`": ("go forward", "go forward"),
    "go forward\nbecause the box is ahead": ("go forward\nbecause the box is ahead",
                                             "go forward"),
    "**go forward**": ("go forward", "go forward"),
    "go  forward": ("go  forward", "go forward"),  # two spaces: no action of BALROG's
    "turn left 2": ("turn left ", "turn left 2"),  # digits never survive BALROG's filter
}


@pytest.mark.parametrize("answer", list(NAIVE_READINGS))
def test_strict_is_balrogs_naive_rule_and_lenient_is_an_option(answer):
    actions = tuple(envs.make("babyai", "goto").actions)
    for parsing, expected in zip(("strict", "lenient"), NAIVE_READINGS[answer], strict=True):
        agent = AGENTS["naive"](AgentSpec("naive", "naive", answer_parsing=parsing), None, "")
        assert agent.parse(Completion(answer), actions).candidate == expected, parsing


@pytest.mark.parametrize(("kind", "answer", "candidate"), [
    # cot: the naive filter, then the text after the last "ACTION:"
    ("cot", "Think.\nACTION: turn left\nACTION: go forward", "go forward"),
    ("cot", "I choose... ACTION: pick up!", "pick up"),
    ("cot", "no label at all", "no label at all"),
    ("cot", "action: go forward", "action: go forward"),  # the label is case-sensitive
    # robust agents: the first tagged span, stripped; tags are case-sensitive
    ("robust_naive", "<|ACTION|> drop <|END|> <|ACTION|>toggle<|END|>", "drop"),
    ("robust_naive", "just toggle", "just toggle"),
    ("robust_naive", "<|action|>toggle<|end|>", "<|action|>toggle<|end|>"),
    ("robust_cot", "Reasons.\n<|ACTION|>turn right<|END|>", "turn right"),
    ("robust_cot", "Reasons, then toggle", "Failed to obtain a valid action from the reasoning."),
    # planner (BALROG's custom agent): everything after the first "ACTION:", any case
    ("planner", "PLAN: a\naction: go forward", "go forward"),
    ("planner", "PLAN: a\nACTION: go forward\nmore words", "go forward\nmore words"),
])
def test_strict_readings_follow_each_balrog_agent(kind, answer, candidate):
    agent = AGENTS[kind](AgentSpec(kind, kind), None, "")
    assert agent.parse(Completion(answer), ()).candidate == candidate


def test_prompt_layout_and_history_windows_are_balrogs(tmp_path, monkeypatch):
    """cot with max_text_history 2 and max_cot_history 1: the queue holds 4 events; the
    instructions come first as a user message; past answers are actions, the newest with
    reasoning as "Previous plan"; the current observation is headed as current."""
    steps, episode, requests = run_agent(tmp_path, monkeypatch, "cot", GOOD["cot"], steps=5,
                                         max_text_history=2, max_cot_history=1)
    game = envs.make("babyai", "goto")
    texts = [game.reset(episode["seed"]).text]
    texts += [game.step(s["action"]).observation.text for s in steps[:-1]]
    instructions = requests[0]["messages"][0]["content"]
    suffix = requests[0]["messages"][-1]["content"].removeprefix(
        f"Current Observation:\n{texts[0]}")
    assert suffix.startswith("\n\nFirst think step by step")
    plan = f"Previous plan:\n{GOOD['cot']}"
    expected = [
        [("user", instructions), ("user", f"Current Observation:\n{texts[0]}{suffix}")],
        [("user", instructions), ("user", f"Observation:\n{texts[0]}"), ("assistant", plan),
         ("user", f"Current Observation:\n{texts[1]}{suffix}")],
    ]
    for n in (2, 3, 4):  # the queue is full: answer, observation, answer, observation
        expected.append([("user", instructions), ("assistant", "go forward"),
                         ("user", f"Observation:\n{texts[n - 1]}"), ("assistant", plan),
                         ("user", f"Current Observation:\n{texts[n]}{suffix}")])
    got = [[(m["role"], m["content"]) for m in body["messages"]] for body in requests]
    assert got == expected


def test_observations_beyond_the_text_window_keep_only_their_heading():
    from balrog_worker.agents.history import History

    history = History(max_text_history=1, max_image_history=2)  # a queue of 4 events
    for step in range(3):
        history.observe(f"text {step}", "status")
        history.answered(f"action {step}")
    history.observe("text 3", "status now", image=b"png")
    messages = history.messages("rules")
    assert [(m.role, m.content) for m in messages] == [
        ("user", "rules"), ("assistant", "action 1"), ("user", "Observation:"),
        ("assistant", "action 2"),
        ("user", "Current Observation:\nstatus now\ntext 3\nImage observation provided.")]
    assert messages[-1].images == (b"png",)


@pytest.mark.parametrize("windows", [(16, 0, 1), (2, 1, 1), (1, 3, 2), (3, 2, 0)])
def test_history_messages_follow_the_windows_at_every_step(windows):
    """Step after step (the messages of older events are reused while they keep their
    place in each window): what the history shows equals what BALROG's rules make of
    the whole queue afresh, for events with and without text, images and reasoning."""
    from balrog_worker.agents.history import History

    max_text, max_image, max_cot = windows
    history = History(max_text, max_image, max_cot)
    rng = random.Random(sum(windows))
    events: list[tuple] = []  # ("observation", text, image) or ("answer", action, plan)
    for step in range(40):
        text = None if rng.random() < 0.1 else f"text {step}"
        image = None if rng.random() < 0.3 else f"png {step}".encode()
        context = rng.choice(["", "status", f"status {step}"])
        history.observe(text, context, image)
        events.append(("observation", text, image))
        queue = events[-2 * max(max_text, max_image):]
        got = [(m.role, m.content, m.images) for m in history.messages("rules")]
        assert got == [("user", "rules", ()), *_shown_afresh(queue, context, windows)]
        if rng.random() < 0.9:  # a turn may leave no answer
            plan = None if rng.random() < 0.4 else f"plan {step}"
            history.answered(f"action {step}", plan)
            events.append(("answer", f"action {step}", plan))


def _shown_afresh(queue: list[tuple], context: str, windows: tuple) -> list[tuple]:
    """The messages of ``queue`` by BALROG's rules, worked out from the whole queue."""
    max_text, max_image, max_cot = windows
    observations = [i for i, event in enumerate(queue) if event[0] == "observation"]
    plans = [i for i, event in enumerate(queue) if event[0] == "answer" and event[2]]
    texts, images = set(observations[-max_text:]), set(observations[-max_image:] if max_image
                                                       else [])
    shown_plans = set(plans[-max_cot:] if max_cot else [])
    shown = []
    for i, (kind, first, second) in enumerate(queue):
        if kind == "answer":
            shown.append(("assistant", f"Previous plan:\n{second}" if i in shown_plans
                          else first, ()))
            continue
        newest = i == len(queue) - 1
        parts = ["Current Observation:" if newest else "Observation:"]
        parts += [context] if newest and context else []
        parts += [first] if i in texts and first is not None else []
        with_image = i in images and second is not None
        parts += ["Image observation provided."] if with_image else []
        shown.append(("user", "\n".join(parts), (second,) if with_image else ()))
    return shown


def test_a_vision_agent_sends_exactly_its_image_window(tmp_path, monkeypatch):
    _, _, requests = run_agent(tmp_path, monkeypatch, "naive", GOOD["naive"],
                               max_text_history=3, max_image_history=2, steps=4)
    for number, body in enumerate(requests):
        per_message = [sum(part.get("type") == "image_url" for part in m["content"])
                       if isinstance(m["content"], list) else 0 for m in body["messages"]]
        assert sum(per_message) == min(number + 1, 2)
        assert per_message[-1] == 1  # the current observation always carries its frame
        if number:
            assert per_message[-3] == 1  # and the newest past one, nothing older


def test_lenient_parsing_is_named_in_the_records(tmp_path, monkeypatch):
    _, episode, _ = run_agent(tmp_path, monkeypatch, "naive", "Go Forward", steps=2,
                              answer_parsing="lenient")
    assert episode["answer_parsing"] == "lenient" and episode["invalid_actions"] == 0


def test_few_shot_demonstrations_never_come_from_a_seed_the_cell_plays(tmp_path, monkeypatch):
    _, episode, requests = run_agent(tmp_path, monkeypatch, "few_shot", "go forward", steps=2)
    (demo,) = episode["demonstrations"]
    assert demo["source"] == "scripted" and (demo["env"], demo["task"]) == ("babyai", "goto")
    played = {episode_seed(0, "babyai", "goto", i) for i in range(100_000)}
    assert demo["seed"] not in played
    messages = [(m["role"], m["content"]) for m in requests[0]["messages"]]
    end = messages.index(("user", "****** END OF DEMONSTRATION EPISODE 1 ******"))
    shown = messages[2:end]  # the whole episode: observation, then action and observation
    assert len(shown) == 2 * demo["steps"] + 1
    assert all(role == "user" and text.startswith("Obesrvation:\n")
               for role, text in shown[::2])
    assert messages[end + 1] == ("user", "****** Now it's your turn to play the game! ******")


def test_a_demonstration_seed_equal_to_a_played_seed_is_skipped():
    first, second = demonstration_seeds(0, "babyai", "goto", 2, frozenset())
    assert demonstration_seeds(0, "babyai", "goto", 1, frozenset({first})) == [second]


def test_demonstrations_are_cut_at_max_icl_history_keeping_the_end_marker():
    config = CellConfig(cell=Cell("m", "few_shot", "babyai", "goto"),
                        model=ModelSpec("m", "random"),
                        agent=AgentSpec("few_shot", "few_shot", max_icl_history=3,
                                        icl_episodes=2), episodes=1, max_steps=5)
    demos = demonstrations_for(config)
    assert len(demos) == 2 and demos[0].seed != demos[1].seed
    agent = AGENTS["few_shot"](config.agent, None, "Rules. PLAY!", demonstrations=demos)
    contents = [m.content for m in agent.opening()]
    assert contents[0] == "Rules. First, observe the demonstrations provided and learn from them!!"
    assert contents[1:] == [
        "****** START OF DEMONSTRATION EPISODE 1 ******",
        f"Obesrvation:\n{demos[0].observations[0]}", demos[0].actions[0],
        f"Obesrvation:\n{demos[0].observations[1]}",
        "****** END OF DEMONSTRATION EPISODE 1 ******",
        "****** Now it's your turn to play the game! ******"]


def test_textworld_demonstrations_are_games_the_cell_does_not_play():
    """BALROG's TextWorld task is 25 games (seed S plays game S % 25): a demonstration is
    another game than every one the cell plays, and a cell playing too many of them for a
    demonstration to be left is refused before it runs."""
    family = envs.FAMILIES["textworld"]
    config = CellConfig(cell=Cell("m", "few_shot", "textworld", "coin_collector"),
                        model=ModelSpec("m", "random"),
                        agent=AgentSpec("few_shot", "few_shot", icl_episodes=2),
                        episodes=10, max_steps=5)
    played = {family.game_of(episode_seed(0, "textworld", "coin_collector", i))
              for i in range(10)}
    seeds = demonstration_seeds(0, "textworld", "coin_collector", 2, frozenset(played),
                                family.game_of)
    shown = {family.game_of(seed) for seed in seeds}
    assert len(shown) == 2 and not shown & played
    demos = demonstrations_for(config)
    assert [d.seed for d in demos] == seeds and all(d.progression == 1.0 for d in demos)
    with pytest.raises(ConfigError, match="too many to leave 2 for demonstrations"):
        CellConfig(cell=config.cell, model=config.model, agent=config.agent, episodes=200,
                   max_steps=5)
    with pytest.raises(ValueError, match="no game is left"):
        demonstration_seeds(0, "textworld", "coin_collector", 1, frozenset(range(25)),
                            family.game_of)
