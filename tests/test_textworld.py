"""BALROG's TextWorld games, played: which game a seed picks, the oracle wins every
task, progression is BALROG's rule, any command is answered, and the shipped games are
unpacked once."""

import random

import numpy as np
import pytest

from balrog_worker.envs import bundled
from balrog_worker.envs.textworld import MAX_COMMANDS, TASKS, TextWorldGame, game_file


@pytest.fixture(scope="module")
def games():
    made = {task: TextWorldGame(task) for task in TASKS}
    yield made
    for game in made.values():
        game.close()


def play_oracle(game, limit=MAX_COMMANDS):
    """Follow the oracle until the game ends; return the number of steps."""
    for step in range(1, limit + 1):
        outcome = game.step(game.oracle_action())
        assert 0.0 <= game.progression() <= 1.0
        if outcome.terminated:
            return step
    raise AssertionError(f"the oracle did not finish {game.task} in {limit} steps")


def test_a_seed_picks_game_seed_mod_25_of_the_sorted_files():
    for task, suffix in [("treasure_hunter", ".ulx"), ("coin_collector", ".ulx"),
                         ("the_cooking_game", ".z8")]:
        games = bundled.textworld_games(task)
        assert len(games) == 25 and all(path.suffix == suffix for path in games)
        assert [p.name for p in games] == sorted(p.name for p in games)
        assert all(path.with_suffix(".json").is_file() for path in games)
        assert game_file(task, 27) == games[2] and game_file(task, 10**9 + 4) == games[4]


@pytest.mark.parametrize("task", TASKS)
def test_the_oracle_wins_balrogs_games(games, task):
    game = games[task]
    for seed in (0, 13):
        game.reset(seed)
        assert game.progression() == 0.0
        steps = play_oracle(game)
        info = game.episode_info()
        assert info["won"] and not info["lost"] and info["score"] == info["max_score"] > 0
        assert game.progression() == 1.0 and steps <= MAX_COMMANDS
        assert info["game"] == f"{task}/{game_file(task, seed).name}"


@pytest.mark.parametrize("task", TASKS)
def test_the_oracle_replans_after_a_detour(games, task):
    game = games[task]
    game.reset(1)
    rng = random.Random(task)
    # Wander off the winning path first: moves only, which can never lose the game.
    for _ in range(4):
        detours = [c for c in game.actions if c.startswith("go ") and c != game.oracle_action()]
        if detours:
            game.step(rng.choice(sorted(detours)))
    play_oracle(game)
    assert game.episode_info()["won"] and game.progression() == 1.0


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


def test_the_game_ends_after_80_commands(games):
    game = games["coin_collector"]
    game.reset(2)
    ends = [game.step("look").terminated for _ in range(MAX_COMMANDS)]
    assert ends == [False] * (MAX_COMMANDS - 1) + [True]
    assert game.progression() == 0.0  # ended unwon, nothing scored


def test_any_command_is_valid_played_and_answered(games):
    game = games["coin_collector"]
    first = game.reset(0)
    assert game.is_valid("dance wildly") and game.is_valid("")
    assert any(command.startswith("go ") for command in game.actions)
    outcome = game.step("dance wildly")
    assert outcome.observation.text and outcome.observation.text != first.text
    assert outcome.reward == 0.0 and not outcome.terminated
    assert game.step("look").observation.text.startswith(first.text.splitlines()[0])
    assert game.instructions().count("\n") >= 2 and "coin" in game.instructions()


def test_the_games_are_unpacked_once(tmp_path, monkeypatch):
    monkeypatch.setenv("BALROG_WORKER_CACHE", str(tmp_path))
    first = bundled.textworld_games("coin_collector")
    assert first[0].is_relative_to(tmp_path)
    stamp = first[0].stat().st_mtime_ns
    assert bundled.textworld_games("coin_collector") == first
    assert first[0].stat().st_mtime_ns == stamp
    (folder,) = [p for p in (tmp_path / "data").iterdir() if p.is_dir()]
    assert folder.name.startswith("balrog-textworld-games-")  # no scratch folder left


def test_frame_shows_the_text(games):
    game = games["coin_collector"]
    game.reset(0)
    frame = game.frame()
    assert frame.dtype == np.uint8 and frame.ndim == 3 and frame.shape[2] == 3
    assert (frame < 128).any() and (frame == 255).mean() > 0.5  # dark text on white


def test_a_model_episode_plays_one_copy_of_the_game(monkeypatch):
    """The commands TextWorld could list come from a second copy of the game, built only
    for the policies that read them (the random and scripted baselines): an episode of a
    model never builds it."""
    from balrog_worker.cells import Cell
    from balrog_worker.clients.base import Client, Completion
    from balrog_worker.config import AgentSpec, CellConfig, ModelSpec
    from balrog_worker.episode import Episode

    class Walker(Client):
        def complete(self, request):
            return Completion(text="go north")

    config = CellConfig(cell=Cell("m", "naive", "textworld", "coin_collector"),
                        model=ModelSpec("m", "random"), agent=AgentSpec("naive", "naive"),
                        episodes=1, max_steps=5)
    from balrog_worker.envs import textworld

    loaded = []
    load = textworld._load
    monkeypatch.setattr(textworld, "_load", lambda path, infos: loaded.append(infos) or load(
        path, infos))
    episode = Episode.of_cell(config, Walker(), 0, seed=3)
    try:
        record = episode.play()
    finally:
        episode.close()
    assert record.num_steps == 5 and record.invalid_actions == 0
    assert loaded == [textworld.INFOS]


def test_an_empty_answer_is_sent_to_the_game_as_balrog_sends_it(tmp_path, monkeypatch):
    """BALROG's TextWorld plays whatever the answer names, the empty command included (the
    game answers it); no default action is played and nothing counts as invalid."""
    from balrog_worker.cells import Cell
    from balrog_worker.config import AgentSpec, CellConfig, ModelSpec
    from balrog_worker.evaluator import run_cell
    from balrog_worker.store import read_jsonl
    from tests.stubs import StubServer, openai_server

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-textworld-123456")
    # A blank answer: the stub's "" would be a response with no choices at all.
    with StubServer(openai_server.ok_body, openai_server.error_body, answer=" ") as stub:
        model = ModelSpec("stub", "openai", model="gpt-test", base_url=stub.url + "/v1")
        config = CellConfig(cell=Cell("stub", "naive", "textworld", "coin_collector"),
                            model=model, agent=AgentSpec("naive", "naive"), episodes=1,
                            max_steps=2, cache="off")
        run_cell(config, tmp_path / "out")
    steps, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    (episode,) = read_jsonl(tmp_path / "out" / "episodes.jsonl")[0]
    assert [(s["candidate"], s["action"], s["valid"]) for s in steps] == [("", "", True)] * 2
    assert episode["invalid_actions"] == 0
    assert "previous output did not contain a valid action" not in steps[1]["observation"]
