"""BabyAI against BALROG's own output: every golden episode replayed through this
project's env API must give the same level and the same text, reward and end at every
step (tests/golden/babyai.jsonl: 5 tasks x 30 seeds x 20 random actions)."""

import json
from pathlib import Path

import pytest

from balrog_worker import envs

GOLDEN = Path(__file__).parent / "golden"


def episodes(name: str) -> list[dict]:
    return [json.loads(line) for line in (GOLDEN / name).read_text().splitlines()]


def level(game) -> dict:
    """The level as the golden file records its initial state."""
    env = game.env
    objects = []
    for y in range(env.grid.height):
        for x in range(env.grid.width):
            cell = env.grid.get(x, y)
            if cell is None or cell.type == "wall":
                continue
            obj = {"type": cell.type, "color": cell.color, "x": x, "y": y}
            if cell.type == "door":
                obj.update(is_open=cell.is_open, is_locked=cell.is_locked)
            if cell.type == "box":
                obj["contains"] = cell.contains
            objects.append(obj)
    return {"mission": env.mission, "agent_pos": [int(v) for v in env.agent_pos],
            "agent_dir": int(env.agent_dir), "max_steps": env.max_steps, "objects": objects}


@pytest.mark.parametrize("record", episodes("babyai.jsonl"),
                         ids=lambda r: f"{r['task'].split('/')[1]}-{r['seed']}")
def test_babyai_replays_balrog_exactly(record):
    game = envs.make(record["env"], record["task"])  # BALROG's names, as written there
    observation = game.reset(record["seed"])
    expected = {k: record["initial_state"][k] for k in
                ("mission", "agent_pos", "agent_dir", "max_steps", "objects")}
    assert level(game) == expected
    first = record["observations"][0]
    assert (observation.text, observation.context) == (
        first["long_term_context"], first["short_term_context"])
    for i, action in enumerate(record["actions"]):
        outcome = game.step(action)
        shown = record["observations"][i + 1]
        assert outcome.observation.text == shown["long_term_context"], f"step {i + 1}"
        assert outcome.observation.context == shown["short_term_context"]
        assert (outcome.reward, outcome.terminated, outcome.truncated) == (
            record["rewards"][i], record["terminated"][i], record["truncated"][i])
    assert game.progression() == record["progression"]


@pytest.mark.parametrize("record", episodes("babyai_solver.jsonl")[::5],
                         ids=lambda r: f"{r['task'].split('/')[1]}-{r['seed']}")
def test_the_scripted_expert_solves_balrogs_levels_as_the_forks_bot_does(record):
    game = envs.make("babyai", record["task"])
    game.reset(record["seed"])
    for i, expected in enumerate(record["actions"]):
        assert game.oracle_action() == expected, f"step {i}"
        outcome = game.step(expected)
    assert outcome.terminated and game.progression() == 1.0
