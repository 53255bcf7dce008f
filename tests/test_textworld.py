"""TextWorld games, really generated and played: the oracle wins, seeds fix the game, the
cache builds each game once, and any command is answered.

Each (task, seed) game is generated once for the module into a private cache (a few
seconds each); every later reset loads it from there.
"""

import json
import os
import random
import subprocess
import sys

import numpy as np
import pytest

from balrog_worker.envs.textworld import TASKS, TextWorldGame, game_path

MAX_STEPS = 80


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("BALROG_WORKER_CACHE", str(root))
        yield root


@pytest.fixture(scope="module")
def games(cache):
    made = {task: TextWorldGame(task) for task in TASKS}
    yield made
    for game in made.values():
        game.close()


def play_oracle(game, limit=MAX_STEPS):
    """Follow the oracle until the game ends; return the number of steps and rewards."""
    rewards = []
    for step in range(1, limit + 1):
        outcome = game.step(game.oracle_action())
        rewards.append(outcome.reward)
        assert 0.0 <= game.progression() <= 1.0
        if outcome.terminated:
            return step, rewards
    raise AssertionError(f"the oracle did not finish {game.task} in {limit} steps")


@pytest.mark.parametrize("task", list(TASKS))
def test_the_oracle_wins_from_reset(games, task):
    game = games[task]
    game.reset(0)
    assert game.progression() == 0.0
    steps, rewards = play_oracle(game)
    info = game.episode_info()
    assert info["won"] and not info["lost"]
    assert info["score"] == info["max_score"] == sum(rewards) > 0
    assert game.progression() == 1.0
    assert steps <= MAX_STEPS


@pytest.mark.parametrize("task", list(TASKS))
def test_the_oracle_replans_after_a_detour(games, task):
    game = games[task]
    game.reset(0)
    rng = random.Random(task)
    # Wander off the winning path first: moves only, which can never lose the game.
    for _ in range(4):
        detours = [c for c in game.actions if c.startswith("go ") and c != game.oracle_action()]
        if detours:
            game.step(rng.choice(sorted(detours)))
    play_oracle(game)
    assert game.episode_info()["won"] and game.progression() == 1.0


def test_the_objective_is_given_once_without_the_solution(games):
    """As in BALROG: the game's text without its objective, no short-term context, and
    instructions that give the task's kind but not this game's objective ("goal" does)."""
    for task, game in games.items():
        observation = game.reset(0)
        objective = game.episode_info()["objective"]
        assert objective and objective not in game.instructions()
        assert objective not in observation.text
        assert observation.text.startswith("-= ")  # the room, with the ASCII-art banner gone
        assert "$$" not in observation.text
        assert observation.context == ""
        assert objective.split()[0] in game.step("goal").observation.text
        if task != "the_cooking_game":
            # TextWorld's own objective lists every move; only the goal remains.
            assert objective.startswith("Find the ") and "go " not in objective


def test_progression_is_balrogs_rule(games):
    """Set when the game ends (the better of score / max score and winning); a game the
    step cap stops scores 0, whatever its score so far."""
    game = games["the_cooking_game"]
    game.reset(0)
    while not game.episode_info()["score"]:
        game.step(game.oracle_action())
    assert game.episode_info()["score"] > 0 and game.progression() == 0.0  # still running
    play_oracle(game)
    assert game.progression() == 1.0


def test_any_command_is_valid_played_and_answered(games):
    game = games["coin_collector"]
    first = game.reset(0)
    assert game.is_valid("dance wildly") and not game.is_valid("  ")
    assert {"look", "inventory"} <= set(game.actions)
    assert any(command.startswith("go ") for command in game.actions)
    assert all(isinstance(text, str) for text in game.actions.values())
    outcome = game.step("dance wildly")
    assert outcome.observation.text and outcome.observation.text != first.text
    assert outcome.reward == 0.0 and not outcome.terminated
    assert game.step("look").observation.text.startswith(first.text.splitlines()[0])


def test_the_same_seed_gives_the_same_game_built_once(games, cache):
    game = games["coin_collector"]
    first = game.reset(1).text
    path = game_path("coin_collector", 1)
    built = path.stat()
    other = TextWorldGame("coin_collector")
    try:
        assert other.reset(1).text == first  # a new game loads the cached file...
    finally:
        other.close()
    assert game.reset(1).text == first
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (built.st_ino, built.st_mtime_ns)  # ...as is
    assert game.reset(0).text != first
    # One folder per game, no scratch folder left behind.
    folders = [p.name for p in (cache / "textworld").iterdir() if p.is_dir()]
    assert not [name for name in folders if name.startswith(".")]
    assert len([name for name in folders if name.startswith("coin_collector-")]) == 2


def test_generation_does_not_depend_on_the_process(games):
    """Another interpreter, with other string hashes, generates the same world."""
    code = (
        "import json, sys\n"
        "from balrog_worker.envs.textworld import generate\n"
        "game = generate('coin_collector', 1)\n"
        "json.dump([game.walkthrough, sorted(i.name or '' for i in game.infos.values()),"
        " game.objective], sys.stdout)\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=env, timeout=120, check=True)
    from balrog_worker.envs.textworld import generate

    game = generate("coin_collector", 1)
    here = [game.walkthrough, sorted(i.name or "" for i in game.infos.values()), game.objective]
    assert json.loads(result.stdout) == here


@pytest.mark.parametrize("task", list(TASKS))
def test_progression_stays_in_bounds_under_random_play(games, task):
    game = games[task]
    game.reset(0)
    rng = random.Random(7)
    total = 0.0
    for _ in range(40):
        outcome = game.step(rng.choice(sorted(game.actions)))
        total += outcome.reward
        assert 0.0 <= game.progression() <= 1.0
        if outcome.terminated:
            break
    assert total == game.episode_info()["score"]


def test_frame_shows_the_text(games):
    game = games["coin_collector"]
    game.reset(0)
    frame = game.frame()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert (frame < 128).any() and (frame == 255).mean() > 0.5  # dark text on white
