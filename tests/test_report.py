"""What a researcher reads: every table and figure of a pipeline run with single- and
multi-agent cells, the HTML page and Snakemake's report rendered by a headless browser,
and the notebook that rebuilds them executed."""

import re
import subprocess

import nbclient
import nbformat
import numpy as np
import polars as pl
import pytest
from PIL import Image

from tests.browser import chromium_path
from tests.test_workflow import make_project, sh

pytestmark = pytest.mark.slow

GRID = {
    "seed": 5,
    "paths": {"results": "results/runs", "reports": "reports"},
    "models": {"random": {"backend": "random"}},
    "agents": {"naive": {}},
    "envs": {
        "babyai": {"tasks": ["goto"], "episodes": 2, "max_steps": 6},
        "multigrid": {"tasks": ["soccer", "collect"], "episodes": 3, "max_steps": 4},
    },
    "grid": [{"models": ["random"], "agents": ["naive"], "envs": ["babyai", "multigrid"],
              "coordination_levels": [1, 3],
              "observation_modes": ["egocentric", "visible_teammates"]}],
}
FIGURES = ["leaderboard", "other_envs", "per_task", "rq1_levels", "rq2_modes", "rq3_behaviour"]
TABLES = ["leaderboard", "per_env", "per_task", "usage", "rq1_performance", "rq1_paired",
          "rq2_performance", "rq2_paired", "rq3_behaviour"]


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory, repo):
    """The small grid run once by Snakemake: 1 BabyAI cell and 8 MultiGrid cells."""
    project = make_project(repo, tmp_path_factory.mktemp("report") / "project", GRID)
    sh("snakemake", "--cores", "2", cwd=project)
    return project


def browse(page, tmp_path, *flags) -> subprocess.CompletedProcess:
    """Open ``page`` in headless Chromium; JavaScript runs for up to 10 s of page time."""
    return subprocess.run(
        [chromium_path(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=10000", *flags,
         page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True)


def test_the_pipeline_writes_every_table_and_figure(pipeline):
    reports = pipeline / "reports"
    for name in TABLES:
        assert pl.read_csv(reports / "tables" / f"{name}.csv").height > 0, name
    for name in FIGURES:
        for ext in ("png", "pdf"):
            assert (reports / "figures" / f"{name}.{ext}").stat().st_size > 5_000
    paired = pl.read_csv(reports / "tables" / "rq1_paired.csv")
    assert set(paired["task"]) == {"soccer", "collect"}
    assert (paired["n_pairs"] == 3).all()
    usage = pl.read_csv(reports / "tables" / "usage.csv")
    # Every step of every episode is a call: 2 x 6 BabyAI steps at most; MultiGrid counts
    # one call per focal player and step.
    babyai = usage.filter(pl.col("env") == "babyai")
    episodes = pl.read_csv(reports / "tables" / "per_env.csv").filter(pl.col("env") == "babyai")
    assert babyai["calls"].item() <= 12 and episodes["episodes"].item() == 2


def test_html_page_shows_every_figure_in_a_headless_browser(pipeline, tmp_path):
    page = pipeline / "reports" / "index.html"
    dom = browse(page, tmp_path, "--dump-dom").stdout
    shown = re.search(r'<body data-figures-shown="(\d+)"', dom)
    assert shown and int(shown.group(1)) == len(FIGURES)  # every image decoded
    for heading in ("Leaderboard", "RQ1: coordination levels", "RQ2: observation modes",
                    "RQ3: role-based team strategy", "Model calls"):
        assert f"<h2>{heading}</h2>" in dom
    assert "random" in re.search(r'<section id="leaderboard">.*?</section>', dom, re.S).group(0)

    shot = tmp_path / "page.png"
    browse(page, tmp_path, "--window-size=1280,2000", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3)
    # The figures' bars are drawn in seaborn's colour-blind palette: saturated pixels that
    # neither text nor table rules produce.
    saturated = (pixels.max(axis=1).astype(int) - pixels.min(axis=1)) > 80
    assert saturated.mean() > 0.002, "no figure visible in the screenshot"


def test_snakemake_report_renders_its_result_categories(pipeline, tmp_path):
    report = tmp_path / "snakemake_report.html"
    sh("snakemake", "--report", str(report), cwd=pipeline)
    dom = browse(report, tmp_path, "--dump-dom").stdout
    rendered = re.sub(r"<script.*?</script>", "", dom, flags=re.S)  # what React drew
    for category in ("Figures", "Research questions", "Tables"):
        assert category in rendered


def test_notebook_rebuilds_the_same_tables_and_shows_the_figures(pipeline, repo, tmp_path,
                                                                 monkeypatch):
    monkeypatch.setenv("BALROG_RESULTS", str(pipeline / "results" / "runs"))
    monkeypatch.setenv("BALROG_REPORTS", str(tmp_path / "nb_reports"))
    notebook = nbformat.read(repo / "notebooks" / "figures.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(repo / "notebooks")}}).execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == len(FIGURES)
    for name in TABLES:
        ours = pl.read_csv(tmp_path / "nb_reports" / "tables" / f"{name}.csv")
        theirs = pl.read_csv(pipeline / "reports" / "tables" / f"{name}.csv")
        assert ours.equals(theirs), name


def test_the_page_shows_each_cells_episodes_and_links_the_viewer(pipeline, tmp_path):
    reports = pipeline / "reports"
    viewer = reports / "viewer"
    cells = sorted(p.name for p in (pipeline / "results" / "runs").iterdir())
    assert (viewer / "index.html").is_file()
    assert sorted(p.name for p in (viewer / "data" / "cells").iterdir()) == cells
    dom = browse(reports / "index.html", tmp_path, "--dump-dom").stdout
    assert 'href="viewer/index.html"' in dom
    shown = re.search(r'data-animations-shown="(\d+)"', dom)
    expected = len(re.findall(r'<img class="animation"', dom))
    assert shown and int(shown.group(1)) == expected >= len(cells)  # every one decoded
    for cell in cells:
        assert f"<h3>{cell}</h3>" in dom
