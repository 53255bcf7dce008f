"""TextWorld against BALROG's own output: every golden episode (3 tasks x 10 seeds, 30
commands each: the game's walkthrough with everyday commands mixed in) replayed through
this project's env API must play the same game file and give the same text, reward and end
at every step, and the same progression."""

import gzip
import json
from pathlib import Path

import pytest

from balrog_worker import envs
from balrog_worker.envs.textworld import game_file

with gzip.open(Path(__file__).parent / "golden" / "textworld.jsonl.gz", "rt") as golden:
    RECORDS = [json.loads(line) for line in golden]
TASKS = list(dict.fromkeys(r["task"] for r in RECORDS))


@pytest.mark.parametrize("task", TASKS)
def test_textworld_replays_balrog_exactly(task):
    game = envs.make("textworld", task)
    try:
        for record in (r for r in RECORDS if r["task"] == task):
            where = f"{task} seed {record['seed']}"
            path = game_file(task, record["seed"])
            assert f"{path.parent.name}/{path.name}" == record["game_file"], where
            observation = game.reset(record["seed"])
            assert observation.text == record["observations"][0]["long_term_context"], where
            assert observation.context == record["observations"][0]["short_term_context"]
            for i, action in enumerate(record["actions"]):
                assert game.is_valid(action)
                outcome = game.step(action)
                shown = record["observations"][i + 1]
                assert outcome.observation.text == shown["long_term_context"], (
                    f"{where} step {i + 1} ({action!r})")
                assert (outcome.reward, outcome.terminated, outcome.truncated) == (
                    record["rewards"][i], record["terminated"][i], record["truncated"][i]), (
                    f"{where} step {i + 1}")
            assert game.progression() == record["progression"], where
    finally:
        game.close()


def test_balrogs_quirks_are_kept():
    """The objective is never shown, even when asked for (the cooking games, Z-machine
    files, still show their status line); a step's reward is the score so far, not the
    points of that step; an empty command is played."""
    coins = envs.make("textworld", "coin_collector")
    try:
        coins.reset(3)
        assert coins.step("goal").observation.text == ""
    finally:
        coins.close()
    game = envs.make("textworld", "the_cooking_game")
    try:
        game.reset(3)
        objective = game._infos["objective"]
        assert objective and objective not in game._observe().text
        shown = game.step("goal").observation.text
        assert objective not in shown and shown.startswith(">") and "-= Backyard =-" in shown
        assert game.is_valid("") and game.step("").observation.text
        walk = next(r for r in RECORDS if (r["task"], r["seed"]) == ("the_cooking_game", 3))
        game.reset(3)
        rewards = [game.step(action).reward for action in walk["actions"]]
        assert rewards == walk["rewards"]
        assert rewards[8:12] == [1.0] * 4  # one point scored at step 9, reported four times
        assert game.episode_info()["score"] == rewards[-1]
    finally:
        game.close()
