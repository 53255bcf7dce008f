"""BabyAI and MiniGrid text observations against the true grid, over many random states."""

import random
import re

import numpy as np
import pytest

from balrog_worker.envs import make
from balrog_worker.envs.babyai import TASKS
from balrog_worker.envs.grid_text import object_name
from balrog_worker.envs.gridworld import ACTIONS

LINE = re.compile(
    r"^- an? (?P<name>.+?)(?: (?P<side>\d+) steps? (?P<dir>left|right))?"
    r"(?: and)?(?: (?P<fwd>\d+) steps? forward)?$"
)


def parse_view(text: str) -> list[tuple[str, int, int]]:
    """(name, forward, right) for each line of 'You see:'."""
    items = []
    for line in text.splitlines():
        if not line.startswith("- ") or line == "- nothing but empty floor":
            continue
        match = LINE.match(line)
        assert match, f"unparseable line {line!r}"
        right = int(match["side"] or 0) * (1 if match["dir"] == "right" else -1)
        items.append((match["name"], int(match["fwd"] or 0), right))
    return items


def absolute(env, forward: int, right: int) -> tuple[int, int]:
    pos = np.array(env.agent_pos) + forward * np.array(env.dir_vec) + right * env.right_vec
    return int(pos[0]), int(pos[1])


def check_against_grid(game) -> int:
    env = game.env
    text = game._observe().text
    described = parse_view(text)
    # Every line names what really stands in that cell.
    for name, forward, right in described:
        x, y = absolute(env, forward, right)
        cell = env.grid.get(x, y)
        assert cell is not None, f"{name!r} at ({x},{y}) but the cell is empty:\n{text}"
        assert object_name(cell) == name
        assert env.agent_sees(x, y)
    # Every visible non-wall object is described, exactly once.
    described_cells = {absolute(env, f, r) for n, f, r in described if n != "wall"}
    assert len(described_cells) == len([d for d in described if d[0] != "wall"])
    for x in range(env.width):
        for y in range(env.height):
            cell = env.grid.get(x, y)
            if cell is None or cell.type == "wall" or (x, y) == tuple(env.agent_pos):
                continue
            if env.agent_sees(x, y):
                assert (x, y) in described_cells, f"visible {object_name(cell)} missing:\n{text}"
    # Walls: only the nearest one straight ahead, left or right, and it is the nearest.
    for name, forward, right in described:
        if name != "wall":
            continue
        assert forward == 0 or right == 0
        step = (1, 0) if right == 0 else (0, 1 if right > 0 else -1)
        for k in range(1, max(abs(forward), abs(right))):
            x, y = absolute(env, k * step[0], k * step[1])
            between = env.grid.get(x, y)
            assert between is None or between.type != "wall", "a nearer wall was skipped"
    carrying = env.carrying
    expected = f"a {object_name(carrying)}" if carrying else "nothing"
    assert f"You are carrying {expected}." in text
    return len(described)


@pytest.mark.parametrize("task", TASKS)
def test_description_matches_true_grid_on_random_walks(task):
    game = make("babyai", task)
    rng = random.Random(task)
    lines = 0
    for episode in range(12):
        game.reset(seed=1000 + episode)
        for _ in range(25):
            lines += check_against_grid(game)
            outcome = game.step(rng.choice(list(ACTIONS)))
            if outcome.terminated or outcome.truncated:
                break
    assert lines > 100  # the walks saw plenty of objects


def test_observation_opens_with_the_mission_and_the_tasks_ask_for_their_kind():
    patterns = {
        "goto": r"^go to ", "pickup": r"^pick up ", "open": r"^open ",
        "putnext": r"^put .+ next to ",
        "pick_up_seq_go_to": r"(pick up .+, then go to |go to .+ after you pick up )",
    }
    for task, pattern in patterns.items():
        game = make("babyai", task)
        for seed in range(5):
            observation = game.reset(seed)
            mission = game.env.mission
            assert re.search(pattern, mission), (task, mission)
            assert observation.text.startswith(f"Mission: {mission}\nYou see:")
            assert mission in game.instructions()


def test_reset_is_deterministic_per_seed():
    game = make("babyai", "putnext")
    first = game.reset(7).text
    game.step("turn left")
    assert game.reset(7).text == first
    assert len({game.reset(seed).text for seed in range(6)}) > 1


def test_step_limit_is_64_per_navigation():
    limits = {}
    for task in TASKS:
        game = make("babyai", task)
        game.reset(0)
        limits[task] = game.env.max_steps
    assert limits == {"goto": 64, "pickup": 64, "open": 128, "putnext": 128,
                      "pick_up_seq_go_to": 128}


def test_progression_is_one_after_reaching_the_goal_with_the_babyai_bot():
    from minigrid.utils.baby_ai_bot import BabyAIBot

    names = {index: name for name, (index, _) in ACTIONS.items()}
    for task in TASKS:
        game = make("babyai", task)
        game.reset(3)
        bot = BabyAIBot(game.env)
        assert game.progression() == 0.0
        for _ in range(200):
            outcome = game.step(names[int(bot.replan())])
            if outcome.terminated:
                break
        assert outcome.reward > 0 and game.progression() == 1.0, task


def test_frame_is_an_rgb_image():
    game = make("babyai", "goto")
    game.reset(0)
    frame = game.frame()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3


@pytest.mark.parametrize("task", ["empty", "doorkey", "lavagap", "multiroom", "keycorridor",
                                  "fourrooms"])
def test_minigrid_description_matches_true_grid(task):
    game = make("minigrid", task)
    rng = random.Random(task)
    for episode in range(4):
        observation = game.reset(seed=episode)
        assert observation.text.startswith(f"Mission: {game.env.mission}\n")
        for _ in range(20):
            check_against_grid(game)
            if game.step(rng.choice(list(ACTIONS))).terminated:
                break


def test_scripted_oracle_solves_babyai_through_the_harness(tmp_path):
    from balrog_worker.cells import Cell
    from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
    from balrog_worker.evaluator import run_cell

    for task in TASKS:
        config = CellConfig(cell=Cell("scripted", "naive", "babyai", task),
                            model=BUILTIN_MODELS["scripted"], agent=AgentSpec("naive", "naive"),
                            episodes=10, max_steps=None)
        report = run_cell(config, tmp_path / task)
        assert report.summary["aggregate"]["progression"] >= 90.0, task
        assert report.summary["aggregate"]["invalid_action_rate"] == 0.0
