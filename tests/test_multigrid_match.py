"""MultiGrid Soccer and Collect through the harness: records, prompts, metrics, scoring."""

import collections

import pytest

from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell
from balrog_worker.multigrid.game import game_facts, make_env
from balrog_worker.multigrid.metrics import SoccerTracker
from balrog_worker.multigrid.prompts import system_prompt
from balrog_worker.store import read_jsonl

NAIVE = AgentSpec("naive", "naive")


def cell_config(model, task, level, mode, episodes=2, max_steps=20, opponent="scripted"):
    return CellConfig(cell=Cell(model, "naive", "multigrid", task, level, mode),
                      model=BUILTIN_MODELS[model], agent=NAIVE, episodes=episodes,
                      max_steps=max_steps, opponent=opponent)


@pytest.mark.parametrize("task", ["soccer", "collect"])
@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("mode", ["egocentric", "visible_teammates"])
def test_every_level_and_mode_writes_multi_agent_records(task, level, mode, tmp_path):
    report = run_cell(cell_config("random", task, level, mode), tmp_path)
    assert (report.ran, report.failed) == (2, 0)
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    steps, _ = read_jsonl(tmp_path / "steps.jsonl")
    players = 2 if task == "soccer" else 3
    for episode in episodes:
        assert (episode["coordination_level"], episode["observation_mode"]) == (level, mode)
        assert len(episode["focal_agents"]) == players
        assert set(episode["agent_returns"]) >= set(episode["focal_agents"])
        assert episode["team_returns"] and 0.0 <= episode["progression"] <= 1.0
        assert episode["llm_calls"] == players * episode["num_steps"]
        assert (episode["roles"] is not None) == (level == 3)
        if task == "soccer":
            assert episode["outcome"] in {"win", "draw", "loss"}
            for key in ("goals_for", "goals_against", "possession_share", "passes", "steals",
                        "both_chasing_rate", "mean_teammate_distance", "role_adherence"):
                assert key in episode
        else:
            assert sum(episode["balls_by_agent"].values()) == episode["balls_collected"]
            assert 0.0 <= episode["contested_rate"] <= 1.0
    assert len(steps) == sum(e["num_steps"] for e in episodes) * players
    assert {s["agent_id"] for s in steps} == set(episodes[0]["focal_agents"])


def test_scripted_team_beats_random_opponents_over_20_seeded_episodes(tmp_path):
    config = cell_config("scripted", "soccer", 1, "egocentric", episodes=20, max_steps=None,
                         opponent="random")
    report = run_cell(config, tmp_path)
    episodes, _ = read_jsonl(tmp_path / "episodes.jsonl")
    outcomes = collections.Counter(e["outcome"] for e in episodes)
    assert outcomes["win"] >= 18, outcomes
    assert sum(e["goals_for"] for e in episodes) > sum(e["goals_against"] for e in episodes)
    assert report.summary["aggregate"]["progression"] >= 90.0


def test_episodes_of_one_seed_are_paired_across_levels_and_modes(tmp_path):
    seeds = set()
    for level, mode in [(1, "egocentric"), (3, "visible_teammates")]:
        run_cell(cell_config("random", "collect", level, mode, episodes=2, max_steps=3),
                 tmp_path / f"{level}{mode}")
        episodes, _ = read_jsonl(tmp_path / f"{level}{mode}" / "episodes.jsonl")
        seeds.add(tuple(sorted(e["seed"] for e in episodes)))
    assert len(seeds) == 1


def test_prompts_name_the_real_teams_goals_and_roles():
    env = make_env("soccer").unwrapped
    env.reset(seed=0)
    facts = game_facts(env, "soccer", 0)
    me, rival = env.agents[0], next(a for a in env.agents if a.team_index != 1)
    assert facts.team_colour == me.color.name and rival.color.name in " ".join(facts.opponents)
    own_x = {p[0] for p, t in zip(env.goal_pos, env.goal_index, strict=True) if t == 1}
    assert f"x = {own_x.pop()}" in facts.own_goal
    one = system_prompt(facts, 1)
    two = system_prompt(facts, 2)
    three = system_prompt(facts, 3, "defender", {"agent 1": "forward"})
    assert "advice" not in one.lower() and "role" not in one.lower()
    assert "Teamwork advice" in two and "DEFENDER" not in two
    assert "Your role: DEFENDER" in three and "agent 1 is the forward" in three
    assert one in two.replace("\n\nTeamwork advice", "") or two.startswith(one.split("\n\n")[0])
    collect = game_facts(make_env("collect").unwrapped, "collect", 0)
    assert "Your zone: the WEST third" in system_prompt(collect, 3, "west", {})
    with pytest.raises(ValueError, match="needs a role"):
        system_prompt(facts, 3)


def test_soccer_tracker_counts_passes_and_steals_from_possession_changes():
    wrapped = make_env("soccer")
    env = wrapped.unwrapped
    wrapped.reset(seed=3)
    ball = next(obj for x in range(env.width) for y in range(env.height)
                if (obj := env.grid.get(x, y)) is not None and obj.type.value == "ball")
    tracker = SoccerTracker(env, [0, 1], {0: "forward", 1: "defender"})
    for holder in [0, 0, 1, 2, 0, 3]:  # pass, steal against, steal for, steal against
        for agent in env.agents:
            agent.state.carrying = ball if agent.index == holder else None
        tracker.update()
    summary = tracker.summary()
    assert (summary["passes"], summary["steals"], summary["steals_against"]) == (1, 1, 2)
    assert summary["possession_share"] == pytest.approx(4 / 6, abs=1e-3)


def test_cli_accepts_mosaic_aliases_and_defaults_level_and_mode(tmp_path):
    from .conftest import run_cli

    out = tmp_path / "cell"
    run_cli("run", "--env", "MultiGrid-Collect-v0", "--model", "random", "--episodes", "1",
            "--max-steps", "4", "--out", str(out), cwd=tmp_path)
    episode = read_jsonl(out / "episodes.jsonl")[0][0]
    assert (episode["env"], episode["task"]) == ("multigrid", "collect")
    assert (episode["coordination_level"], episode["observation_mode"]) == (1, "egocentric")
    bad = run_cli("run", "--env", "babyai/goto", "--model", "random", "--opponent", "random",
                  "--out", str(tmp_path / "x"), cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "multi-agent envs only" in bad.stderr
