"""BALROG's own wording, read from a BALROG tree the user points to (issue 25 item 4).
The tree here is one of our own in BALROG's layout, with made-up text: BALROG's prose is
not copied into this repository."""

import json

import polars as pl
import pytest

from balrog_worker.analysis.leaderboard import write_leaderboard
from balrog_worker.cells import Cell
from balrog_worker.config import AgentSpec, CellConfig, ConfigError, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl
from tests.stubs import StubServer, openai_server

NAIVE = '''
import copy

from balrog.agents.base import BaseAgent


class NaiveAgent(BaseAgent):
    def act(self, obs, prev_action=None):
        messages = self.prompt_builder.get_prompt()
        naive_instruction = """
Say one action, as the tree says.
        """.strip()
        messages[-1].content += "\\n\\n" + naive_instruction
        return self.client.generate(messages)
'''
BABYAI = '''
from .clean_lang_wrapper import BabyAITextCleanLangWrapper

ACTIONS = {"turn left": "rotate left", "go forward": "one step ahead"}


def get_instruction_prompt(env, mission="BabyAI-MixedTrainLocal-v0"):
    lines = ",\\n".join(f"{action}: {text}" for action, text in ACTIONS.items())
    return f"""
A tree of our own. Goal: {mission}.

{lines}.
""".strip()
'''


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "BALROG"
    (root / "balrog" / "agents").mkdir(parents=True)
    (root / "balrog" / "environments" / "babyai_text").mkdir(parents=True)
    (root / "balrog" / "agents" / "naive.py").write_text(NAIVE)
    (root / "balrog" / "environments" / "babyai_text" / "__init__.py").write_text(BABYAI)
    return root


def test_an_agent_asks_in_the_words_of_the_balrog_tree(tree, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-wording-123456")
    agent = AgentSpec("naive", "naive", wording="balrog", balrog_source=str(tree))
    with StubServer(openai_server.ok_body, openai_server.error_body,
                    answer="go forward") as stub:
        model = ModelSpec("stub", "openai", model="gpt-test", base_url=stub.url + "/v1")
        config = CellConfig(cell=Cell("stub", "naive", "babyai", "goto"), model=model,
                            agent=agent, episodes=1, max_steps=2, cache="off")
        run_cell(config, tmp_path / "runs" / config.cell.slug)
        bodies = [r["body"] for r in stub.requests]
    (episode,) = read_jsonl(tmp_path / "runs" / config.cell.slug / "episodes.jsonl")[0]
    mission = episode["mission"]
    first = bodies[0]["messages"]
    assert first[0]["content"] == (f"A tree of our own. Goal: {mission}.\n\n"
                                   "turn left: rotate left,\ngo forward: one step ahead.")
    assert all(body["messages"][-1]["content"].endswith(
        "\n\nSay one action, as the tree says.") for body in bodies)
    assert episode["prompt_wording"].startswith("balrog@")
    write_leaderboard(tmp_path / "runs", tmp_path / "reports")
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    assert board["balrog_wording"].to_list() == [True]
    text = (tmp_path / "reports" / "tables" / "leaderboard.md").read_text()
    assert "| stub | naive |" in text  # not marked
    # Another tree, another digest: results say which text they were asked in.
    (tree / "balrog" / "agents" / "naive.py").write_text(NAIVE.replace("tree says", "tree said"))
    from balrog_worker.balrog_wording import BalrogWording

    assert BalrogWording(tree.resolve()).label != episode["prompt_wording"]
    json.dumps(episode)


@pytest.mark.parametrize(("change", "message"), [
    ("no tree", "no balrog/agents and balrog/environments there"),
    ("no agent text", "no answer-format text"),
    ("planner", "BALROG has no 'planner' agent"),
    ("crafter", None),
    ("multigrid", "reads the instructions of"),
    ("source alone", "go together"),
])
def test_a_tree_that_cannot_give_the_text_is_refused_in_one_line(tree, tmp_path, change,
                                                                   message):
    from balrog_worker.config import BUILTIN_MODELS

    kind, env, task, source = "naive", "babyai", "goto", str(tree)
    fields = {"wording": "balrog"}
    if change == "no tree":
        source = str(tmp_path / "nowhere")
    elif change == "no agent text":
        (tree / "balrog" / "agents" / "naive.py").write_text("class NaiveAgent:\n    pass\n")
    elif change == "planner":
        kind = "planner"
    elif change == "multigrid":
        env, task = "minigrid", "empty"
    elif change == "source alone":
        fields = {}
    if change == "crafter":  # the tree has no Crafter package: said when it is asked
        from balrog_worker.balrog_wording import WordingError, load

        with pytest.raises(WordingError, match=r"crafter/__init__\.py: not found"):
            load(tree).instructions("crafter", "default")
        return
    with pytest.raises(ConfigError) as raised:
        CellConfig(cell=Cell("random", kind, env, task), model=BUILTIN_MODELS["random"],
                   agent=AgentSpec(kind, kind, balrog_source=source, **fields), episodes=1,
                   max_steps=2)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_hostile_tree_runs_nothing_but_text_building(tree, tmp_path):
    """A params file names the tree, and params come from elsewhere: a module value that
    is code is never evaluated, and a prompt function reaching past building text is
    refused before it runs."""
    from balrog_worker.balrog_wording import WordingError, load

    witness = tmp_path / "ran"
    package = tree / "balrog" / "environments" / "babyai_text" / "__init__.py"
    package.write_text(BABYAI.replace(
        'ACTIONS = {', f'SIDE = open({str(witness)!r}, "w")\nACTIONS = {{'))
    wording = load(tree)
    assert wording.instructions("babyai", "goto", mission="m").startswith("A tree of our own")
    assert not witness.exists()
    package.write_text(BABYAI.replace('    lines = ', '    ().__class__.__bases__\n    lines = '))
    with pytest.raises(WordingError, match="does more than build text"):
        wording.instructions("babyai", "goto", mission="m")
    package.write_text(BABYAI.replace('    lines = ', f'    open({str(witness)!r}, "w")\n'
                                                    '    lines = '))
    with pytest.raises(WordingError, match="get_instruction_prompt failed"):
        wording.instructions("babyai", "goto", mission="m")  # no open() in there
    assert not witness.exists()
