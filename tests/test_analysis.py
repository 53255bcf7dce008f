"""Aggregation of real multi-agent runs: leaderboard formats and the RQ tables and figures."""

import polars as pl

from balrog_worker.analysis.figures import draw_figures
from balrog_worker.analysis.leaderboard import write_leaderboard
from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell


def test_aggregate_writes_leaderboard_formats_and_rq_tables_and_figures(tmp_path):
    results = tmp_path / "results"
    for task in ("soccer", "collect"):
        for level in (1, 3):
            for mode in ("egocentric", "visible_teammates"):
                cell = Cell("random", "naive", "multigrid", task, level, mode)
                config = CellConfig(cell=cell, model=BUILTIN_MODELS["random"],
                                    agent=AgentSpec("naive", "naive"), episodes=3,
                                    max_steps=8)
                run_cell(config, results / cell.slug)
    write_leaderboard(results, tmp_path / "reports")
    tables = tmp_path / "reports" / "tables"
    tex = (tables / "leaderboard.tex").read_text()
    assert tex.startswith("\\begin{tabular}") and "random & naive" not in tex  # not BALROG's
    assert "| random | naive | multigrid |" in (tables / "other_envs.md").read_text()
    paired = pl.read_csv(tables / "rq1_paired.csv")
    assert set(paired["task"]) == {"soccer", "collect"}
    assert (paired["n_pairs"] == 3).all()  # the same 3 seeds at every level: paired
    assert ((paired["p_holm"] >= paired["p_value"]) & (paired["p_holm"] <= 1)).all()
    modes = pl.read_csv(tables / "rq2_paired.csv")
    assert set(modes["coordination_level"]) == {1, 3}
    behaviour = pl.read_csv(tables / "rq3_behaviour.csv")
    assert {"possession_share", "passes", "both_chasing_rate", "role_adherence",
            "contested_rate"} <= set(behaviour.columns)
    assert behaviour.filter((pl.col("task") == "soccer") & (pl.col("coordination_level") == 1)
                            )["role_adherence"].null_count() == 1  # roles exist at level 3 only
    paths = draw_figures(tables, tmp_path / "figures")
    names = {p.name for p in paths}
    assert {"other_envs.png", "per_task.png", "rq1_levels.png", "rq2_modes.png",
            "rq3_behaviour.pdf"} <= names
    assert "leaderboard.png" not in names  # BALROG's six environments only: none played
    assert all(p.stat().st_size > 5_000 for p in paths)
