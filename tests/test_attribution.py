"""Who answered, and against whom (issue 25): in a model-vs-model Soccer match every call
is credited to the model that made it, and a match against another model is a cell, a
table row and a figure line of its own."""

import json

import polars as pl
import pytest

from balrog_worker.analysis import figures
from balrog_worker.analysis.leaderboard import write_leaderboard
from balrog_worker.config import params_from_dict
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl
from tests.stubs import StubServer, openai_server


def test_every_call_is_credited_to_the_model_that_made_it(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-attribution-123456")
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="forward") as home, \
            StubServer(openai_server.ok_body, openai_server.error_body,
                       answer="nonsense") as away:
        models = {"teamA": {"backend": "openai", "model": "gpt-a", "base_url": f"{home.url}/v1"},
                  "teamB": {"backend": "openai", "model": "gpt-b", "base_url": f"{away.url}/v1"}}
        grid = {"models": ["teamA"], "agents": ["naive"], "envs": ["multigrid"],
                "coordination_levels": [1], "observation_modes": ["egocentric"]}
        results = tmp_path / "runs"
        slugs = []
        for opponent in ("model:teamB", "scripted"):  # the same model, level and mode
            params = params_from_dict({
                "models": models, "agents": {"naive": {}}, "grid": grid,
                "envs": {"multigrid": {"tasks": ["soccer"], "episodes": 3, "max_steps": 8,
                                       "opponent": opponent}}})
            (cell,) = params.cells()
            slugs.append(cell.slug)
            run_cell(params.cell_config(cell, cache="off"), results / cell.slug)
        calls = {"teamA": len(home.requests), "teamB": len(away.requests)}
    assert slugs[0] == slugs[1] + "__vs-model-teamB" and len(set(slugs)) == 2
    assert calls == {"teamA": 2 * 3 * 8 * 2, "teamB": 2 * 3 * 8}  # players x episodes x steps
    steps, _ = read_jsonl(results / slugs[0] / "steps.jsonl")
    focal = {"agent_0", "agent_1"}
    for step in steps:
        expected = ("teamA", "focal") if step["agent_id"] in focal else ("teamB", "opponent")
        assert (step["answered_by"], step["side"]) == expected
        assert step["model"] == "teamA"  # the cell's key
    write_leaderboard(results, tmp_path / "reports")
    tables = tmp_path / "reports" / "tables"
    usage = pl.read_csv(tables / "usage.csv")
    by_model = {row["model"]: row for row in usage.iter_rows(named=True)}
    assert {m: r["calls"] for m, r in by_model.items()} == calls
    assert by_model["teamB"]["side"] == "opponent" and by_model["teamA"]["side"] == "focal"
    assert by_model["teamB"]["invalid_pct"] == 100.0  # its answers, not teamA's
    assert by_model["teamA"]["invalid_pct"] == 0.0
    rq1 = pl.read_csv(tables / "rq1_performance.csv")
    assert sorted(rq1["opponent"].to_list()) == ["model:teamB", "scripted"]
    assert (rq1["n"] == 3).all()  # three episodes each, never pooled
    (match,) = pl.read_csv(tables / "model_matches.csv").iter_rows(named=True)
    assert (match["model"], match["opponent"], match["n"]) == ("teamA", "model:teamB", 3)
    assert match["win_rate"] + match["draw_rate"] + match["loss_rate"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def two_agents_two_opponents(tmp_path_factory):
    """Tables of a grid of two agents against two opponents, at two levels and in both
    observation modes (the random baseline: every agent plays alike, quickly)."""
    root = tmp_path_factory.mktemp("rq")
    results = root / "runs"
    for opponent in ("scripted", "random"):
        params = params_from_dict({
            "models": {"r": {"backend": "random"}}, "agents": {"naive": {}, "cot": {}},
            "envs": {"multigrid": {"tasks": ["soccer"], "episodes": 2, "max_steps": 3,
                                   "opponent": opponent}},
            "grid": {"models": ["r"], "agents": ["naive", "cot"], "envs": ["multigrid"],
                     "coordination_levels": [1, 3]}})
        for cell in params.cells():
            run_cell(params.cell_config(cell), results / cell.slug)
    write_leaderboard(results, root / "reports")
    return root / "reports" / "tables"


def test_every_rq_figure_line_has_one_point_per_level(two_agents_two_opponents, tmp_path,
                                                      monkeypatch):
    drawn = {}
    save = figures._save

    def keep(fig, out, name):
        drawn[name] = [[list(line.get_xdata()) for line in ax.lines] for ax in fig.axes]
        return save(fig, out, name)

    monkeypatch.setattr(figures, "_save", keep)
    figures.draw_figures(two_agents_two_opponents, tmp_path / "figures")
    assert {"rq1_levels", "rq2_modes", "rq3_behaviour"} <= set(drawn)
    for name in ("rq1_levels", "rq2_modes", "rq3_behaviour"):
        lines = [xs for axes in drawn[name] for xs in axes if len(xs) > 1]
        assert lines, name
        for xs in lines:
            assert len(xs) == len(set(xs)), (name, xs)  # one point per coordination level
    # RQ1: one line per (agent, opponent), each through both levels.
    assert len([xs for xs in drawn["rq1_levels"][0] if len(xs) == 2]) >= 4


def test_the_rq_tables_keep_opponents_apart(two_agents_two_opponents):
    rq2 = pl.read_csv(two_agents_two_opponents / "rq2_performance.csv")
    keys = rq2.select("opponent", "agent", "coordination_level", "observation_mode")
    assert keys.n_unique() == rq2.height == 2 * 2 * 2 * 2
    assert (rq2["n"] == 2).all()
    paired = pl.read_csv(two_agents_two_opponents / "rq1_paired.csv")
    assert set(paired["opponent"]) == {"scripted", "random"}
    assert (paired["n_pairs"] == 2).all()  # two seeds, each game counted once per level
    json.dumps(paired.to_dicts())  # plain values
