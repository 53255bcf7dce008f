"""The leaderboard and usage tables against hand-computed values, from records written the
way cells write them: several games' schemas mixed, a failed episode, a torn last line, a
corrupt line, and steps of an episode a crash interrupted."""

import json
import logging
import math

import polars as pl
import pytest

from balrog_worker.analysis.leaderboard import write_leaderboard
from balrog_worker.analysis.load import load_episodes

CELL = {"model": "m", "agent": "naive", "coordination_level": None, "observation_mode": None}


def episode(env, task, index, progression, **extra):
    return {"run_id": f"m__naive__{env}__{task}", **CELL, "env": env, "task": task,
            "episode_index": index, "seed": 100 + index, "num_steps": 4,
            "progression": progression, "success": progression == 1.0, "invalid_actions": 1,
            "input_tokens": 10, "output_tokens": 2, "cost_usd": 0.5, "failed": False,
            "error": None, **extra}


def step(env, task, index, number, valid, latency):
    return {"run_id": f"m__naive__{env}__{task}", **CELL, "env": env, "task": task,
            "episode_index": index, "step": number, "observation": "x" * 50, "valid": valid,
            "input_tokens": 10, "output_tokens": 2, "retries": 0, "latency_s": latency}


def write(path, records, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    # env "alpha": progressions 0, 0.5, 1 in one cell; a failed episode is not counted.
    write(root / "a" / "episodes.jsonl",
          [episode("alpha", "t1", i, p) for i, p in enumerate([0.0, 0.5, 1.0])]
          + [episode("alpha", "t1", 3, 1.0, failed=True, error="RetriesExhausted: 500")])
    # Steps: 2 per committed episode (one invalid in episode 0), plus steps of the failed
    # episode and of episode 4, which a crash cut before its record was written.
    write(root / "a" / "steps.jsonl",
          [step("alpha", "t1", i, n, valid=(i, n) != (0, 1), latency=0.1 * (i + 1))
           for i in range(3) for n in range(2)]
          + [step("alpha", "t1", i, 0, valid=False, latency=9.0) for i in (3, 4)])
    # env "beta": 0.2 and 0.4 over two tasks; the last line of one file is torn.
    write(root / "b1" / "episodes.jsonl", [episode("beta", "t1", 0, 0.2)],
          tail=json.dumps(episode("beta", "t1", 1, 1.0))[:40])
    write(root / "b2" / "episodes.jsonl", [episode("beta", "t2", 0, 0.4)])
    # A MultiGrid-shaped record with nested per-agent fields in a third env.
    write(root / "c" / "episodes.jsonl",
          [episode("gamma", "soccer", 0, 0.0, agent_returns={"agent_0": 1.0},
                   goals_for=2, goals_against=1, outcome="win")])
    return root


def test_leaderboard_equals_hand_computed_values(results, tmp_path, caplog):
    with caplog.at_level(logging.WARNING):
        metrics = write_leaderboard(results, tmp_path / "reports")
    assert "skipped a torn last record" in caplog.text
    row = metrics["leaderboard"]["m"]["naive"]
    # alpha: mean 50 %, population SD sqrt(1/6) -> SE 100 sqrt(1/6) / sqrt(3).
    se_alpha = 100 * math.sqrt(1 / 6) / math.sqrt(3)
    se_beta = 100 * 0.1 / math.sqrt(2)  # beta: 0.2, 0.4 -> SD 0.1
    assert row["alpha"] == pytest.approx(50.0) and row["alpha_se"] == pytest.approx(se_alpha,
                                                                                     abs=1e-3)
    assert row["beta"] == pytest.approx(30.0) and row["beta_se"] == pytest.approx(se_beta,
                                                                                  abs=1e-3)
    assert row["gamma"] == 0.0 and row["gamma_se"] == 0.0
    # Overall: the unweighted mean of the 3 envs, SE = sqrt(sum SE^2) / 3.
    assert row["overall"] == pytest.approx((50 + 30 + 0) / 3, abs=1e-3)
    assert row["overall_se"] == pytest.approx(math.hypot(se_alpha, se_beta) / 3, abs=1e-3)
    board = (tmp_path / "reports" / "tables" / "leaderboard.md").read_text()
    assert "| m | naive | 26.7 ± 8.2 | 50.0 ± 23.6 | 30.0 ± 7.1 | 0.0 ± 0.0 | 6 |" in board
    per_env = pl.read_csv(tmp_path / "reports" / "tables" / "per_env.csv")
    alpha = per_env.filter(pl.col("env") == "alpha").row(0, named=True)
    assert alpha["cost_usd"] == pytest.approx(1.5)  # the failed episode's cost is not in it
    assert alpha["invalid_action_pct"] == pytest.approx(100 * 3 / 12)


def test_usage_counts_steps_of_committed_episodes_only(results, tmp_path):
    write_leaderboard(results, tmp_path / "reports")
    usage = pl.read_csv(tmp_path / "reports" / "tables" / "usage.csv")
    alpha = usage.filter(pl.col("env") == "alpha").row(0, named=True)
    assert alpha["calls"] == 6  # not the failed episode's step, not the crashed one's
    assert alpha["invalid_pct"] == pytest.approx(100 / 6)
    assert alpha["latency_mean_s"] == pytest.approx(0.2)
    assert alpha["latency_p50_s"] == pytest.approx(0.2)
    assert alpha["input_tokens_per_call"] == 10
    assert usage.filter(pl.col("env") == "beta").is_empty()  # no steps were logged there


def test_a_corrupt_line_inside_a_file_is_skipped_not_fatal(results, caplog):
    path = results / "b2" / "episodes.jsonl"
    path.write_text('{"run_id": garbage\n' + path.read_text())
    with caplog.at_level(logging.WARNING):
        episodes = load_episodes(results)
    assert "skipped a corrupt record" in caplog.text
    assert sorted(episodes["progression"].to_list()) == [0.0, 0.0, 0.2, 0.4, 0.5, 1.0]


def test_game_specific_columns_appear_only_when_some_record_has_them(results):
    episodes = load_episodes(results)
    assert {"goals_for", "outcome"} <= set(episodes.columns)
    assert "possession_share" not in episodes.columns  # no record has it
    single = load_episodes(results / "a")
    assert "goals_for" not in single.columns
