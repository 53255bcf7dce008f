"""BabyAI and MiniGrid text observations against the true grid, over many random states.

BabyAI's text is BALROG's (its Minigrid fork's descriptions, pinned line by line by the
golden traces); here it is also checked against the grid on seeds the traces do not hold.
MiniGrid's is this project's own describer."""

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


BALROG_LINE = re.compile(
    r"^a (?P<name>(?:(?:open|closed|locked) )?[a-z]+ [a-z]+)"
    r"(?: (?P<side>\d+) steps? (?P<dir>left|right))?(?: and)?"
    r"(?: (?P<fwd>\d+) steps? forward)?$"
)
WALL_LINE = re.compile(r"^a wall (?P<n>\d+) steps? (?P<dir>forward|left|right)$")


def fork_name(cell) -> str:
    """How the fork names a thing: '<colour> <type>', doors with their state first."""
    if cell.type == "door":
        state = "locked" if cell.is_locked else ("open" if cell.is_open else "closed")
        return f"{state} {cell.color} door"
    return f"{cell.color} {cell.type}"


def check_balrog_text(game) -> int:
    """Every line of BabyAI's text against the grid: objects at their offsets, walls only
    where they are the first thing seen straight ahead, left or right, the load carried."""
    env = game.env
    text = game._observe().text
    lines = text.splitlines() if text else []
    carrying = env.carrying
    if carrying is not None:
        assert lines.pop(0) == f"You carry a {carrying.color} {carrying.type}"
    walls, objects = {}, []
    for line in lines:
        if wall := WALL_LINE.match(line):
            walls[wall["dir"]] = int(wall["n"])
            continue
        match = BALROG_LINE.match(line)
        assert match, f"unparseable line {line!r}"
        right = int(match["side"] or 0) * (1 if match["dir"] == "right" else -1)
        objects.append((match["name"], int(match["fwd"] or 0), right))
    for name, forward, right in objects:
        x, y = absolute(env, forward, right)
        cell = env.grid.get(x, y)
        assert cell is not None and env.agent_sees(x, y), f"{name} at ({x},{y}):\n{text}"
        assert fork_name(cell) == name
    seen = {absolute(env, f, r) for _, f, r in objects}
    assert len(seen) == len(objects)
    for x in range(env.width):
        for y in range(env.height):
            cell = env.grid.get(x, y)
            if cell is None or cell.type == "wall" or (x, y) == tuple(env.agent_pos):
                continue
            if env.agent_sees(x, y):
                assert (x, y) in seen, f"visible {fork_name(cell)} missing:\n{text}"
    reach = env.agent_view_size // 2
    for direction, unit, steps in (("forward", (1, 0), env.agent_view_size - 1),
                                   ("left", (0, -1), reach), ("right", (0, 1), reach)):
        first = None
        for k in range(1, steps + 1):
            x, y = absolute(env, k * unit[0], k * unit[1])
            inside = 0 <= x < env.width and 0 <= y < env.height
            if inside and env.grid.get(x, y) is not None and env.agent_sees(x, y):
                first = (k, env.grid.get(x, y).type)
                break
        expected = first[0] if first and first[1] == "wall" else None
        assert walls.get(direction) == expected, f"{direction} wall:\n{text}"
    return len(objects) + len(walls)


@pytest.mark.parametrize("task", TASKS)
def test_babyai_text_matches_true_grid_on_random_walks(task):
    game = make("babyai", task)
    rng = random.Random(task)
    lines = 0
    for episode in range(12):
        game.reset(seed=1000 + episode)
        for _ in range(25):
            lines += check_balrog_text(game)
            outcome = game.step(rng.choice(list(ACTIONS)))
            if outcome.terminated or outcome.truncated:
                break
    assert lines > 100  # the walks saw plenty of things


def test_the_mission_is_in_the_instructions_and_the_tasks_ask_for_their_kind():
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
            # As in BALROG: the mission is the goal of the instructions, not in the text.
            assert f"Your goal is to {mission}." in game.instructions()
            assert mission not in observation.text
            excluded = ("yellow box", "red key", "red door", "green ball", "grey door")
            assert not any(phrase in mission for phrase in excluded)


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


def test_level_generation_prints_nothing(capsys):
    """minigrid prints every rejected level; this process's stdout may be a JSONL stream."""
    game = make("babyai", "putnext")
    for seed in range(30):  # putnext rejects levels whose objects are already adjacent
        game.reset(seed)
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("view", [{}, {"agent_view_size": 5}, {"see_through_walls": True}])
def test_babyai_view_equals_minigrids_own_on_random_walks(view):
    """The BabyAI level's encoded view (``grid_view``, made without minigrid's
    intermediate grids) equals ``MiniGridEnv.gen_obs``'s, array for array, on random
    walks of every task (toggling, picking up and dropping as they go): at the grid's
    edges, facing each way, and with an object carried."""
    from minigrid.core.world_object import Ball
    from minigrid.minigrid_env import MiniGridEnv

    from balrog_worker.envs.babyai import MixedTrainLocal

    compared, carried, headings = 0, 0, set()
    for task in TASKS:
        env = MixedTrainLocal(task, agent_view_size=view.get("agent_view_size", 7))
        # BabyAI's rooms never see through walls; minigrid's other branch, all the same.
        env.see_through_walls = view.get("see_through_walls", False)
        for seed in range(6):
            env.reset(seed=seed)
            rng = random.Random(seed)
            for step in range(50):
                if step == 10 and env.carrying is None:  # walks seldom pick things up
                    env.carrying = Ball("purple")
                expected = MiniGridEnv.gen_obs(env)
                got = env.gen_obs()
                assert got.keys() == expected.keys()
                assert got["image"].dtype == expected["image"].dtype
                np.testing.assert_array_equal(got["image"], expected["image"])
                assert (got["direction"], got["mission"]) == (expected["direction"],
                                                             expected["mission"])
                compared += 1
                carried += env.carrying is not None
                headings.add(env.agent_dir)
                # Forward most, so that walks reach walls and the grid's edge.
                _, _, terminated, truncated, _ = env.step(rng.choice([0, 1, 2, 2, 2, 3, 4, 5]))
                if terminated or truncated:
                    break
    assert compared > 500 and carried > 0 and headings == {0, 1, 2, 3}
