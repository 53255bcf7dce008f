"""BALROG's leaderboard both ways: a published submission imported reproduces its
published figures; a run exported is accepted by BALROG's own submit.py, which prints our
leaderboard's figures; export then import gives the same rows; and whatever the
repository holds is imported or skipped with one line."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from balrog_worker.analysis.leaderboard import write_leaderboard
from balrog_worker.balrog_export import ExportError, export_submission
from balrog_worker.balrog_import import SubmissionError, import_submissions
from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl

EXPERIMENTS = Path(os.environ.get(
    "BALROG_EXPERIMENTS",
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "balrog-experiments"))
SAMPLE = EXPERIMENTS / "submissions" / "LLM" / "20241030_naive-Llama-3.2-1B-Instruct"
needs_sample = pytest.mark.skipif(
    not (SAMPLE / "summary.json").is_file() or not (EXPERIMENTS / "submit.py").is_file(),
    reason="BALROG's leaderboard sample is absent (set BALROG_EXPERIMENTS to a checkout)")
OURS = {"nle": "nethack"}


def board_row(results: Path, tmp_path: Path) -> dict:
    write_leaderboard(results, tmp_path / "reports")
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    assert board.height == 1
    return board.row(0, named=True)


def assert_figures(row: dict, summary: dict, tolerance: float = 1e-9) -> None:
    assert abs(row["progression"] - summary["average_progress"]) < tolerance
    assert abs(row["progression_se"] - summary["standard_error"]) < tolerance
    for env, figures in summary["environments"].items():
        ours = OURS.get(env, env)
        assert abs(row[f"progression_{ours}"] - figures["progression_percentage"]) < tolerance
        assert abs(row[f"progression_se_{ours}"] - figures["standard_error"]) < tolerance


@needs_sample
def test_a_published_submission_imported_gives_its_published_figures(tmp_path):
    report = import_submissions([SAMPLE], tmp_path / "results")
    assert (report.episodes, report.cells, report.skipped) == (255, 58, [])
    row = board_row(tmp_path / "results", tmp_path)
    assert_figures(row, json.loads((SAMPLE / "summary.json").read_text()))
    assert row["published"] == SAMPLE.name and row["episodes"] == 255
    # Dated 2024-11-11: its BabyAI levels predate BALROG's fix of num_dists.
    assert "distractor" in row["protocol_notes"]
    assert "†" in (tmp_path / "reports" / "tables" / "leaderboard.md").read_text()
    # The trajectory's "Defaulted to action" notes say which answers were invalid.
    [cell] = [p for p in (tmp_path / "results").iterdir() if p.name.endswith("pick_up_seq_go_to")]
    steps, _ = read_jsonl(cell / "steps.jsonl")
    first = [s for s in steps if s["episode_index"] == 1][:3]
    assert [s["valid"] for s in first] == [False, False, True]
    assert first[0]["action"] == "go forward" and first[2]["action"] == "turn right"
    assert first[1]["observation"].endswith("a wall 2 steps left")  # what step 0 left


def write_submission(folder: Path, episodes: dict[str, dict],
                     csvs: dict[str, str] | None = None, summary: dict | None = None,
                     metadata: str | None = None) -> Path:
    """A submission folder in BALROG's layout, from relative paths and contents."""
    folder.mkdir(parents=True)
    for relative, data in episodes.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(data if isinstance(data, str) else json.dumps(data))
    for relative, text in (csvs or {}).items():
        (folder / relative).write_text(text)
    if summary is not None:
        (folder / "summary.json").write_text(json.dumps(summary))
    if metadata is not None:
        (folder / "metadata.yaml").write_text(metadata)
    return folder


def episode(task: str, progression: float, **more) -> dict:
    return {"task": task, "progression": progression, "num_steps": 4, "input_tokens": 10,
            "output_tokens": 2, "agent": {"type": "cot"},
            "client": {"client_name": "openai", "model_id": "gpt-test",
                       "base_url": "https://user:secret@example.org/v1"}, **more}


def test_the_importer_takes_what_the_repository_really_holds(tmp_path):
    goto = "babyai/BabyAI-MixedTrainLocal-v0/goto/BabyAI-MixedTrainLocal-v0/goto_run_{:02d}.json"
    full = write_submission(tmp_path / "LLM" / "20250101_cot_gpt-test", {
        goto.format(0): episode("BabyAI-MixedTrainLocal-v0/goto", 1.0, seed=5),
        goto.format(1): episode("BabyAI-MixedTrainLocal-v0/goto", 0.0),  # no seed
        goto.format(2): episode("BabyAI-MixedTrainLocal-v0/goto", 0.5, new_field=[1, 2]),
        goto.format(3): "{not json",
        goto.format(4): episode("BabyAI-MixedTrainLocal-v0/goto", "abc"),
        goto.format(5): episode("///", 0.5),  # names nothing
        goto.format(6): episode("BabyAI-MixedTrainLocal-v0/goto", 0.5, num_steps=10**30),
        "crafter/default/default_run_00.json": episode("default", 0.25, seed=1),
        "crafter/crafter_summary.json": {"ignored": True},
        "minigrid/x/x_run_00.json": episode("x", 1.0),  # not one of BALROG's envs
    }, csvs={goto.format(0)[:-5] + ".csv":
             "Step,Action,Reasoning,Observation,Reward,Done\n0,go forward,,a ball,1.0,True\n"},
        metadata='name: "GPT |\\n Test"\ndate: "2025-01-01"\n')  # a table-breaking name
    (full / "babyai" / "link_run_00.json").symlink_to("/dev/null")
    outside = write_submission(tmp_path / "outside", {
        "goto_run_07.json": episode("BabyAI-MixedTrainLocal-v0/goto", 1.0)})
    (full / "babyai" / "linked").symlink_to(outside)  # a folder link: not followed
    old = write_submission(tmp_path / "VLM" / "20240924_naive-Old", {}, summary={
        "average_progress": 20.0, "standard_error": 1.0, "environments": {
            "babyai": {"progression_percentage": 10.0, "standard_error": 2.0,
                       "episodes_played": 50},
            "nle": {"progression_percentage": 30.0, "standard_error": 1.0,
                    "episodes_played": 5},
            "tetris": {"progression_percentage": 1.0, "standard_error": 0.0}}},
        metadata='name: !!python/object/apply:os.system ["echo hi"]\n')  # not read
    with pytest.raises(SubmissionError, match="not a BALROG submission"):
        import_submissions([tmp_path], tmp_path / "results")
    report = import_submissions([full, old], tmp_path / "results")
    assert (report.cells, report.episodes, report.steps) == (2, 4, 1)
    assert report.reference_rows == ["20240924_naive-Old"]
    assert len(report.skipped) == 7 and all("\n" not in line for line in report.skipped)
    assert any("num_steps" in line and "up to" in line for line in report.skipped)
    assert any("metadata.yaml" in line and "not valid YAML" in line
               for line in report.skipped)
    assert any("progression 'abc'" in line for line in report.skipped)
    results = tmp_path / "results"
    text = "".join(p.read_text() for p in results.rglob("*") if p.is_file())
    assert "secret" not in text and "example.org" not in text  # no base_url kept
    cell = results / Cell("GPT Test (BALROG 2025-01-01)", "cot", "babyai", "goto").slug
    records, _ = read_jsonl(cell / "episodes.jsonl")
    assert [r["seed"] for r in records] == [5, None, None]
    assert [r["progression"] for r in records] == [1.0, 0.0, 0.5]
    summary = json.loads((cell / "summary.json").read_text())
    assert summary["imported"]["submission"] == "20250101_cot_gpt-test"
    assert summary["imported"]["protocol_notes"] == []  # after BALROG's BabyAI fix
    write_leaderboard(results, tmp_path / "reports")
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    published = dict(zip(board["model"], board["published"], strict=True))
    assert published == {"GPT Test (BALROG 2025-01-01)": "20250101_cot_gpt-test",
                         "Old (BALROG VLM 2024-09-24)": "20240924_naive-Old"}
    old_row = board.filter(pl.col("published") == "20240924_naive-Old").row(0, named=True)
    assert (old_row["progression_babyai"], old_row["progression_nethack"]) == (10.0, 30.0)
    assert old_row["coverage"] == "2/6" and "distractor" in old_row["protocol_notes"]


BALROG_CELLS = [("babyai", "goto", 6), ("babaisai", "goto_win", 6), ("crafter", "default", 8),
                ("minihack", "corridor_r3", 6), ("nethack", "challenge", 6),
                ("textworld", "coin_collector", 8)]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A run of this project's on BALROG's six games (the random baseline, 3 episodes)."""
    results = tmp_path_factory.mktemp("run")
    for env, task, steps in BALROG_CELLS:
        cell = Cell("random", "naive", env, task)
        config = CellConfig(cell=cell, model=BUILTIN_MODELS["random"],
                            agent=AgentSpec("naive", "naive"), episodes=3, max_steps=steps)
        run_cell(config, results / cell.slug)
    return results


@needs_sample
def test_balrogs_submit_py_accepts_an_export_and_prints_our_leaderboards_figures(
        run, tmp_path):
    row = board_row(run, tmp_path)
    submission = tmp_path / "submission"
    report = export_submission(run, submission)
    assert report.episodes == 18 and report.envs == sorted(
        ["babyai", "babaisai", "crafter", "minihack", "nle", "textworld"])
    ours = json.loads((submission / "summary.json").read_text())
    assert_figures(row, ours)
    # BALROG's file layout: <env>/<task>/<task>_run_NN, a task's "/" making folders.
    goto = "BabyAI-MixedTrainLocal-v0/goto"
    assert (submission / "babyai" / goto / f"{goto}_run_00.json").is_file()
    assert (submission / "babaisai" / "env/goto_win" / "env/goto_win_run_02.csv").is_file()
    assert (submission / "nle" / "NetHackChallenge-v0" / "NetHackChallenge-v0_run_01.json"
            ).is_file()
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(EXPERIMENTS / "submit.py", site)
    done = subprocess.run([sys.executable, "submit.py", str(submission)], cwd=site,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    overall = re.search(r"Overall Average Progression: ([\d.]+)% ± ([\d.]+)%", done.stdout)
    assert (float(overall[1]), float(overall[2])) == (round(row["progression"], 2),
                                                      round(row["progression_se"], 2))
    printed = dict(re.findall(r"^  (\w+): ([\d.]+)% ±", done.stdout, re.MULTILINE))
    assert {OURS.get(env, env): float(value) for env, value in printed.items()} == {
        env: round(row[f"progression_{env}"], 2) for env in
        ("babyai", "babaisai", "crafter", "minihack", "nethack", "textworld")}
    # submit.py rewrote the summaries from the episode files: the same figures.
    assert_figures(row, json.loads((submission / "summary.json").read_text()))


def test_export_then_import_gives_back_the_same_row(run, tmp_path):
    row = board_row(run, tmp_path / "before")
    export_submission(run, tmp_path / "submission")
    import_submissions([tmp_path / "submission"], tmp_path / "again")
    back = board_row(tmp_path / "again", tmp_path / "after")
    for key, value in row.items():
        if key.startswith("progression") or key in ("episodes", "coverage"):
            assert back[key] == pytest.approx(value, abs=1e-9), key
    assert back["published"] == "submission"
    with pytest.raises(ExportError, match="not empty"):
        export_submission(run, tmp_path / "submission")
    with pytest.raises(ExportError, match="no cell"):
        export_submission(run, tmp_path / "other", model="nobody")


@needs_sample
def test_the_report_shows_a_run_beside_published_rows_marked_as_such(run, tmp_path):
    """The page, in a headless browser: the published row's cells are shaded (read off a
    screenshot), the run's are not, and the figure hatches the published bars."""
    from balrog_worker.analysis.figures import draw_figures
    from balrog_worker.analysis.report import write_report
    from tests.browser import Browser

    results = tmp_path / "results"
    shutil.copytree(run, results)
    import_submissions([SAMPLE], results)
    write_leaderboard(results, tmp_path / "reports")
    draw_figures(tmp_path / "reports" / "tables", tmp_path / "reports" / "figures")
    page = write_report(tmp_path / "reports", tmp_path / "reports" / "index.html")
    browser = Browser(tmp_path / "profile", width=1400, height=1000)
    try:
        browser.open(page.resolve().as_uri())
        browser.wait_for("document.readyState === 'complete' && "
                         "document.querySelector('#leaderboard tr.published') !== null")
        board = "document.querySelector('#leaderboard table')"  # the leaderboard's own
        rows = browser.js(f"[...{board}.querySelectorAll('tbody tr')]"
                          ".map(r => [r.classList.contains('published'), r.innerText])")
        colours = []
        for number in range(len(rows)):  # each row's second cell, as the screen shows it
            x, y = browser.js(f"""(() => {{
                const cell = {board}.querySelectorAll('tbody tr')[{number}].cells[1];
                cell.scrollIntoView({{block: 'center'}});
                const box = cell.getBoundingClientRect();
                return [Math.round(box.left + 3), Math.round(box.top + 4)];
            }})()""")
            colours.append(tuple(int(c) for c in browser.screenshot()[y, x]))
    finally:
        browser.close()
    [(published_text, published_colour)] = [(text, colour) for (published, text), colour
                                            in zip(rows, colours, strict=True) if published]
    [(own_text, own_colour)] = [(text, colour) for (published, text), colour
                                in zip(rows, colours, strict=True) if not published]
    assert "20241030_naive-Llama-3.2-1B-Instruct" in published_text and "random" in own_text
    shade = (0xFF, 0xF1, 0xC9)
    assert all(abs(a - b) <= 6 for a, b in zip(published_colour, shade, strict=True))
    assert min(own_colour) > 240  # the run's row: white, not shaded


@needs_sample
def test_the_viewer_shows_a_published_episode_from_its_records(tmp_path):
    from balrog_worker.viewer import data

    import_submissions([SAMPLE], tmp_path / "results")
    [cell] = [p for p in (tmp_path / "results").iterdir() if p.name.endswith("pick_up_seq_go_to")]
    shown = data.episode(cell, 1)
    records = [s for s in read_jsonl(cell / "steps.jsonl")[0] if s["episode_index"] == 1]
    assert shown["published"] == SAMPLE.name and shown["mismatches"] == []
    assert len(shown["steps"]) == len(records) + 1 == shown["episode"]["num_steps"] + 1
    first = shown["steps"][0]["players"]["agent_0"]
    assert (first["candidate"], first["valid"], first["action"]) == (
        "turn forward\nturn left\ndrop\ntoggle", False, "go forward")
    with pytest.raises(KeyError):
        data.episode(cell, 99)


@needs_sample
def test_where_a_run_stands_among_the_published_rows(run, tmp_path):
    results = tmp_path / "results"
    shutil.copytree(run, results)
    import_submissions([SAMPLE], results)
    write_leaderboard(results, tmp_path / "reports")
    tables = tmp_path / "reports" / "tables"
    board = pl.read_csv(tables / "leaderboard.csv")
    mine = board.filter(pl.col("published").is_null()).row(0, named=True)
    theirs = board.filter(pl.col("published").is_not_null()).row(0, named=True)
    versus = pl.read_csv(tables / "vs_published.csv")
    assert versus["env"].to_list() == [
        "babyai", "babaisai", "textworld", "crafter", "minihack", "nethack", "overall"]
    for row in versus.iter_rows(named=True):
        key = "progression" if row["env"] == "overall" else f"progression_{row['env']}"
        assert row["progression"] == pytest.approx(mine[key])
        assert row["rank"] == (1 if mine[key] >= theirs[key] else 2)
        side = "published_below" if row["rank"] == 1 else "published_above"
        assert row[side].startswith(theirs["model"]) and f"{theirs[key]:.1f}" in row[side]


def test_one_models_llm_and_vlm_submissions_are_two_rows_and_nothing_is_overwritten(tmp_path):
    crafter = {"crafter/default/default_run_00.json": episode("default", 0.5, seed=1)}
    llm = write_submission(tmp_path / "LLM" / "20250101_naive_m", crafter,
                           metadata='name: "M"\ndate: "2025-01-01"\n')
    vlm = write_submission(tmp_path / "VLM" / "20250101_naive_m", crafter,
                           metadata='name: "M"\ndate: "2025-01-01"\n')
    twin = write_submission(tmp_path / "other" / "LLM" / "20250102_naive_m", crafter,
                            metadata='name: "M"\ndate: "2025-01-01"\n')
    report = import_submissions([llm, vlm], tmp_path / "results")
    assert report.cells == 2 and report.skipped == []
    again = import_submissions([llm, twin], tmp_path / "results")  # llm again: its own cell
    assert again.cells == 1 and len(again.skipped) == 1
    assert "holds submission '20250101_naive_m'" in again.skipped[0]
    write_leaderboard(tmp_path / "results", tmp_path / "reports")
    board = pl.read_csv(tmp_path / "reports" / "tables" / "leaderboard.csv")
    assert sorted(board["model"]) == ["M (BALROG 2025-01-01)", "M (BALROG VLM 2025-01-01)"]
