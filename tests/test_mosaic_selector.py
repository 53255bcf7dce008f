"""Action-selector mode: an answer read as MOSAIC's worker reads it and turned into the
action MOSAIC's GUI plays; a MultiGrid view the GUI sends as numbers, told in words that
match the game's true state."""

import re

import gymnasium as gym
import pytest

from balrog_worker.mosaic_selector import (
    MULTIGRID_ACTIONS,
    choose,
    describe_flat_view,
    legal_indices,
    read_answer,
)
from balrog_worker.multigrid.observations import view_to_world


@pytest.mark.parametrize(("text", "move", "reasoning"), [
    ("e2e4", "e2e4", ""),
    ("The centre matters.\nI play:\n`e2e4`.", "e2e4", "The centre matters.\nI play:"),
    ("  4  ", "4", ""),
    ("Think.\nACTION: **3**", "3", "Think."),
    ("", "", ""),
])
def test_an_answer_is_read_as_mosaics_worker_reads_it(text, move, reasoning):
    assert read_answer(text) == (move, reasoning)


def test_a_legal_move_is_played_by_its_index_in_the_action_space():
    legal = ["e2e4", "d2d4", "g1f3"]
    mask = legal_indices([0] * 10 + [1] + [0] * 5 + [1, 0, 1])  # indices 10, 16, 18
    chosen = choose("d2d4", legal, mask)
    assert (chosen.action, chosen.action_str, chosen.valid) == (16, "d2d4", True)
    # Without a mask the GUI reads the move itself (chess: UCI).
    assert choose("G1F3", legal, None).action == "g1f3"
    # An answer naming no legal move: the first legal move, and it says so.
    fallback = choose("resign", legal, mask)
    assert (fallback.action, fallback.valid) == (10, False) and "first legal" in (
        fallback.defaulted)


def test_numbered_moves_are_integers_the_gui_plays_directly():
    assert choose("4", ["0", "1", "4", "6"], None).action == 4  # legal moves stated
    assert choose("3", [], None, numbered=7).action == 3  # connect four: columns 0-6
    bad = choose("9", [], None, numbered=7)
    assert (bad.action, bad.valid) == (0, False)
    assert choose("2", [], [0, 1]).action == 0 and not choose("2", [], [0, 1]).valid
    nothing = choose("2", [], [])
    assert nothing.action is None and "nothing is legal" in nothing.defaulted


def test_multigrid_answers_are_its_action_indices():
    assert [choose(name, [], None, action_names=MULTIGRID_ACTIONS).action
            for name in ("noop", "turn left", "RIGHT", "move forward", "pickup", "drop")] == [
        0, 1, 2, 3, 4, 5]
    wrong = choose("fly", [], None, action_names=MULTIGRID_ACTIONS)
    assert (wrong.action, wrong.valid) == (0, False) and "noop is played" in wrong.defaulted


@pytest.mark.parametrize("seed", range(6))
def test_a_flattened_multigrid_view_is_told_as_the_game_has_it(seed):
    import mosaic_multigrid.envs  # noqa: F401 - registers the ids

    env = gym.make("MosaicMultiGrid-S-2v2-IndAgObs-v1", render_mode="rgb_array",
                   disable_env_checker=True)
    observations, _ = env.reset(seed=seed)
    world = env.unwrapped
    for index, agent in enumerate(world.agents):
        flat = observations[index]["image"].flatten().tolist()  # what MOSAIC's GUI sends
        text = describe_flat_view(flat)
        assert text.startswith("You see a 3x3 square")
        for line in text.splitlines()[1:-1]:
            if "open floor" in line:
                continue
            name, where = line[2:].split(": ")
            forward = sum(int(n) * (1 if w == "forward" else 0)
                          for n, w in re.findall(r"(\d+) steps? (\w+)", where))
            right = sum(int(n) * {"right": 1, "left": -1}.get(w, 0)
                        for n, w in re.findall(r"(\d+) steps? (\w+)", where))
            x, y = view_to_world(agent.state.pos, agent.state.dir, forward, right)
            here = [a for a in world.agents if tuple(a.state.pos) == (x, y)]
            thing = world.grid.get(x, y)
            truth = ("agent" if here else thing.type.value if thing is not None else "empty")
            assert name.split()[-1] == truth, (line, (x, y), truth)
    env.close()


def test_a_list_that_is_not_a_view_is_not_described():
    assert describe_flat_view([1, 2, 3, 4]) is None
    assert describe_flat_view(["a"] * 27) is None
