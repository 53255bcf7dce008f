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
    # env babyai: progressions 0, 0.5, 1 in one cell; a failed episode is not counted.
    write(root / "a" / "episodes.jsonl",
          [episode("babyai", "t1", i, p) for i, p in enumerate([0.0, 0.5, 1.0])]
          + [episode("babyai", "t1", 3, 1.0, failed=True, error="RetriesExhausted: 500")])
    # Steps: 2 per committed episode (one invalid in episode 0), plus steps of the failed
    # episode and of episode 4, which a crash cut before its record was written.
    write(root / "a" / "steps.jsonl",
          [step("babyai", "t1", i, n, valid=(i, n) != (0, 1), latency=0.1 * (i + 1))
           for i in range(3) for n in range(2)]
          + [step("babyai", "t1", i, 0, valid=False, latency=9.0) for i in (3, 4)])
    # env crafter: 0.2 and 0.4 over two tasks; the last line of one file is torn.
    write(root / "b1" / "episodes.jsonl", [episode("crafter", "t1", 0, 0.2)],
          tail=json.dumps(episode("crafter", "t1", 1, 1.0))[:40])
    write(root / "b2" / "episodes.jsonl", [episode("crafter", "t2", 0, 0.4)])
    # A MultiGrid record with nested per-agent fields: outside BALROG's six.
    write(root / "c" / "episodes.jsonl",
          [episode("multigrid", "soccer", 0, 0.0, agent_returns={"agent_0": 1.0},
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
    assert row["babyai"] == pytest.approx(50.0) and row["babyai_se"] == pytest.approx(se_alpha,
                                                                                     abs=1e-3)
    assert row["crafter"] == pytest.approx(30.0) and row["crafter_se"] == pytest.approx(se_beta,
                                                                                  abs=1e-3)
    assert "multigrid" not in row  # MultiGrid has a table of its own
    assert metrics["other_envs"]["m"]["naive"]["multigrid"]["progression"] == 0.0
    # Two of BALROG's six environments: no BALROG overall, the coverage instead.
    assert row["overall"] is None and row["coverage"] == "2/6"
    board = (tmp_path / "reports" / "tables" / "leaderboard.md").read_text()
    assert "| m* | naive | – | 50.0 ± 23.6 | 30.0 ± 7.1 | 2/6 | 5 |" in board
    assert "a row gets one only if it played all six" in board
    others = (tmp_path / "reports" / "tables" / "other_envs.md").read_text()
    assert "| m | naive | multigrid | 0.0 ± 0.0 | 1 |" in others
    per_env = pl.read_csv(tmp_path / "reports" / "tables" / "per_env.csv")
    alpha = per_env.filter(pl.col("env") == "babyai").row(0, named=True)
    assert alpha["cost_usd"] == pytest.approx(1.5)  # the failed episode's cost is not in it
    assert alpha["invalid_action_pct"] == pytest.approx(100 * 3 / 12)


def test_usage_counts_steps_of_committed_episodes_only(results, tmp_path):
    write_leaderboard(results, tmp_path / "reports")
    usage = pl.read_csv(tmp_path / "reports" / "tables" / "usage.csv")
    alpha = usage.filter(pl.col("env") == "babyai").row(0, named=True)
    assert alpha["calls"] == 6  # not the failed episode's step, not the crashed one's
    assert alpha["invalid_pct"] == pytest.approx(100 / 6)
    assert alpha["latency_mean_s"] == pytest.approx(0.2)
    assert alpha["latency_p50_s"] == pytest.approx(0.2)
    assert alpha["input_tokens_per_call"] == 10
    assert usage.filter(pl.col("env") == "crafter").is_empty()  # no steps were logged there


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


def test_balrog_overall_only_for_rows_that_played_all_six(tmp_path):
    root = tmp_path / "results"
    six = {"babyai": 0.6, "babaisai": 0.3, "textworld": 0.2, "crafter": 0.1,
           "minihack": 0.05, "nethack": 0.01}
    for env, progression in six.items():
        records = [{**episode(env, "t", i, progression), "model": "full",
                    "run_id": f"full__naive__{env}__t"} for i in range(2)]
        write(root / f"full-{env}" / "episodes.jsonl", records)
    write(root / "part" / "episodes.jsonl", [episode("babyai", "t", 0, 1.0)])
    metrics = write_leaderboard(root, tmp_path / "reports")
    full = metrics["leaderboard"]["full"]["naive"]
    assert full["coverage"] == "6/6"
    assert full["overall"] == pytest.approx(100 * sum(six.values()) / 6, abs=1e-3)
    assert full["overall_se"] == 0.0  # every env's two episodes agree
    assert metrics["leaderboard"]["m"]["naive"]["overall"] is None
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    assert board["model"].to_list() == ["full", "m"]  # a row with an overall ranks first


def test_rows_not_asked_in_balrogs_words_are_marked(tmp_path):
    """Wording changes scores: every episode names whose words its prompts were in, and
    the leaderboard marks rows that were not BALROG's (all of this project's, for now)."""
    from balrog_worker.cells import Cell
    from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
    from balrog_worker.evaluator import run_cell
    from balrog_worker.vocab import PROMPT_WORDING

    config = CellConfig(cell=Cell("random", "naive", "babyai", "goto"),
                        model=BUILTIN_MODELS["random"], agent=AgentSpec("naive", "naive"),
                        episodes=2, max_steps=3)
    run_cell(config, tmp_path / "runs" / config.cell.slug)
    episodes = [json.loads(line) for line in
                (tmp_path / "runs" / config.cell.slug / "episodes.jsonl").open()]
    assert {e["prompt_wording"] for e in episodes} == {PROMPT_WORDING}
    write_leaderboard(tmp_path / "runs", tmp_path / "reports")
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    assert board["prompt_wording"].to_list() == [PROMPT_WORDING]
    assert board["balrog_wording"].to_list() == [False]
    text = (tmp_path / "reports" / "tables" / "leaderboard.md").read_text()
    assert "| random* | naive |" in text and "Rows marked * asked the model" in text
