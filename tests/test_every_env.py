"""Every listed env/task runs through the harness, and the oracles score as they should."""

import pytest

from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.envs import FAMILIES, env_ids
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl

NAIVE = AgentSpec("naive", "naive")


@pytest.mark.parametrize("env_id", env_ids())
def test_random_episode_of_every_listed_id(env_id, tmp_path):
    env, task = env_id.split("/")
    axes = (1, "egocentric") if FAMILIES[env].multi_agent else (None, None)
    config = CellConfig(cell=Cell("random", "naive", env, task, *axes),
                        model=BUILTIN_MODELS["random"], agent=NAIVE, episodes=1, max_steps=5)
    report = run_cell(config, tmp_path)
    assert (report.ran, report.failed) == (1, 0)
    episode = read_jsonl(tmp_path / "episodes.jsonl")[0][0]
    steps, _ = read_jsonl(tmp_path / "steps.jsonl")
    assert 0.0 <= episode["progression"] <= 1.0
    assert 1 <= episode["num_steps"] <= 5
    assert len(steps) == episode["num_steps"] * len(episode.get("focal_agents") or [1])
    assert all(len(step["observation"]) > 20 for step in steps)
    assert all(step["valid"] for step in steps)  # random plays only valid actions


@pytest.mark.parametrize("task", ["treasure_hunter", "the_cooking_game", "coin_collector"])
def test_scripted_walkthrough_wins_textworld_through_the_harness(task, tmp_path):
    config = CellConfig(cell=Cell("scripted", "naive", "textworld", task),
                        model=BUILTIN_MODELS["scripted"], agent=NAIVE, episodes=1, max_steps=80)
    report = run_cell(config, tmp_path)
    assert report.summary["aggregate"]["progression"] == 100.0
    episode = read_jsonl(tmp_path / "episodes.jsonl")[0][0]
    assert episode["won"] and episode["invalid_actions"] == 0


@pytest.mark.parametrize("task", ["goto_win", "make_win-distr_obj_rule", "two_room-make_you",
                                  "two_room-break_stop-goto_win"])
def test_the_scripted_expert_solves_babaisai_through_the_harness(task, tmp_path):
    config = CellConfig(cell=Cell("scripted", "naive", "babaisai", task),
                        model=BUILTIN_MODELS["scripted"], agent=NAIVE, episodes=2,
                        max_steps=100)
    report = run_cell(config, tmp_path)
    assert report.summary["aggregate"]["progression"] == 100.0
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    assert all(e["invalid_actions"] == 0 and e["target_plan"] for e in episodes)


BALROG_IDS = [("nle", "NetHackChallenge-v0"), ("textworld", "treasure_hunter"),
              ("textworld", "the_cooking_game"), ("textworld", "coin_collector")] + [
    ("minihack", f"MiniHack-{name}-v0") for name in (
        "Boxoban-Hard", "Boxoban-Medium", "MazeWalk-9x9", "MazeWalk-15x15", "Corridor-R3",
        "CorridorBattle-Dark", "Quest-Easy", "Quest-Medium")]


@pytest.mark.parametrize("env_task", BALROG_IDS, ids="/".join)
def test_one_episode_of_every_balrog_task_plays_through_the_command_line(env_task, tmp_path):
    """BALROG's own names, through `balrog-worker run`, offline: the data each game reads
    ships with the package."""
    from tests.conftest import run_cli

    env, task = env_task
    run_cli("run", "--env", env, "--task", task, "--model", "random", "--agent", "naive",
            "--episodes", "1", "--max-steps", "3", "--out", str(tmp_path / "cell"))
    (episode,), _ = read_jsonl(tmp_path / "cell" / "episodes.jsonl")
    assert episode["num_steps"] == 3 and episode["invalid_actions"] == 0
    steps, _ = read_jsonl(tmp_path / "cell" / "steps.jsonl")
    first = steps[0]["observation"]
    if env == "textworld":
        assert "-=" in first  # a room's name, as the game prints it
    else:
        assert "message:\n" in first and "\nlanguage observation:\n" in first
