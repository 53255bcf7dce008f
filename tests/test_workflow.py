"""The pipeline as users run it: Snakemake (dry and real) and DVC on a small grid."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from balrog_worker.config import load_params

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}

SMALL = {
    "seed": 3,
    "paths": {"results": "results/runs", "reports": "reports"},  # dvc.yaml reads these
    "models": {"random": {"backend": "random"}},
    "agents": {"naive": {}},
    "envs": {"babyai": {"tasks": ["goto", "pickup"], "episodes": 3, "max_steps": 12}},
    "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]},
}


def sh(*args, cwd, check=True, env: dict | None = None):
    result = subprocess.run(args, cwd=cwd, env={**ENV, **(env or {})}, capture_output=True,
                            text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {result.returncode}:\n"
                             f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def make_project(repo: Path, dest: Path, params: dict) -> Path:
    """A copy of the pipeline (not the results) with ``params`` in a fresh git repository."""
    dest.mkdir()
    for name in ("Snakefile", "dvc.yaml", ".dvc", ".dvcignore", ".gitignore"):
        src = repo / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    for name in ("workflow", "profiles"):
        shutil.copytree(repo / name, dest / name, symlinks=True)
    shutil.copytree(repo / "src", dest / "src", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "params.yaml").write_text(yaml.safe_dump(params))
    sh("git", "init", "-q", cwd=dest)
    sh("git", "add", "-A", cwd=dest)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=dest)
    return dest


@pytest.fixture
def project(tmp_path, repo):
    return make_project(repo, tmp_path / "project", SMALL)


def test_dry_run_of_the_default_params_plans_one_job_per_cell(repo, tmp_path):
    cells = load_params(repo / "params.yaml").cells()
    result = sh("snakemake", "-n", "--quiet", "rules", "--directory", str(tmp_path),
                "--snakefile", str(repo / "Snakefile"), "--configfile",
                str(repo / "params.yaml"), cwd=repo)
    counts = {line.split()[0]: int(line.split()[1]) for line in result.stdout.splitlines()
              if len(line.split()) == 2 and line.split()[1].isdigit()}
    # (random, local) x (babyai, minigrid, minihack, nethack, crafter, textworld, babaisai),
    # scripted x (babyai, textworld, babaisai)
    single = 2 * (5 + 6 + 7 + 1 + 1 + 3 + 2) + (5 + 3 + 2)
    multi = (2 + 1) * 2 * 3 * 2  # (random, local, scripted) x games x levels x modes
    assert counts["evaluate"] == len(cells) == single + multi
    assert counts["aggregate"] == counts["figures"] == 1


def test_workflow_is_lint_clean(repo):
    result = sh("snakemake", "--lint", cwd=repo)
    assert "Congratulations, your workflow is in a good condition" in result.stderr


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"envs": {"babyai": {"tasks": ["goto"], "episods": 3}}}, "unknown key 'episods'"),
        ({"envs": {"babyia": {"tasks": ["goto"]}}}, "unknown env 'babyia'"),
        ({"grid": {"models": ["gpt"], "agents": ["naive"], "envs": ["babyai"]}},
         "'gpt' is not defined under models"),
    ],
)
def test_bad_params_stop_the_workflow_before_any_job(project, change, expected):
    (project / "params.yaml").write_text(yaml.safe_dump({**SMALL, **change}))
    result = sh("snakemake", "--cores", "1", cwd=project, check=False)
    assert result.returncode != 0
    assert expected in result.stderr
    assert not (project / "results").exists()


@pytest.mark.slow
def test_snakemake_then_dvc_run_the_grid_and_a_second_repro_does_nothing(project):
    sh("snakemake", "--cores", "2", cwd=project)
    runs = project / "results" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == [
        "random__naive__babyai__goto", "random__naive__babyai__pickup"]
    board = (project / "reports" / "tables" / "leaderboard.csv").read_text()
    assert board.startswith("model,agent,progression,progression_se")
    assert (project / "reports" / "figures" / "leaderboard.png").stat().st_size > 10_000
    assert "<h2>Leaderboard</h2>" in (project / "reports" / "index.html").read_text()
    metrics = json.loads((project / "reports" / "metrics.json").read_text())
    episodes = [json.loads(line) for cell in runs.iterdir()
                for line in (cell / "episodes.jsonl").read_text().splitlines()]
    assert len(episodes) == 6
    mean = 100 * sum(e["progression"] for e in episodes) / 6
    assert metrics["leaderboard"]["random"]["naive"]["babyai"] == pytest.approx(mean, abs=1e-3)

    # Snakemake again: nothing to do.
    again = sh("snakemake", "--cores", "2", cwd=project)
    assert "Nothing to be done" in again.stdout + again.stderr

    # A cell whose resolved config changes is planned again (its config is a param of its
    # job); a new cell is planned alone.
    def planned(envs: dict) -> int:
        changed = project / "changed.yaml"
        changed.write_text(yaml.safe_dump({**SMALL, "envs": envs}))
        result = sh("snakemake", "-n", "--quiet", "rules", "--configfile", str(changed),
                    cwd=project)
        changed.unlink()
        rows = [line.split() for line in result.stdout.splitlines()]
        return next((int(row[1]) for row in rows if row[:1] == ["evaluate"]), 0)

    babyai = SMALL["envs"]["babyai"]
    assert planned({"babyai": {**babyai, "tasks": ["goto", "pickup", "open"]}}) == 1
    assert planned({"babyai": {**babyai, "max_steps": 13}}) == 2

    # DVC runs the same pipeline; the evaluation stage finds every cell done.
    first = sh("dvc", "repro", cwd=project)
    assert "Running stage 'evaluate'" in first.stdout
    assert "Running stage 'report'" in first.stdout  # figures and page tracked by DVC too
    assert len([json.loads(line) for cell in runs.iterdir()
                for line in (cell / "episodes.jsonl").read_text().splitlines()]) == 6
    second = sh("dvc", "repro", cwd=project)
    assert "Running stage" not in second.stdout
    assert "up to date" in second.stdout
    shown = sh("dvc", "metrics", "show", cwd=project)
    assert "leaderboard.random.naive.babyai" in shown.stdout


def evaluate_jobs(result: subprocess.CompletedProcess) -> int:
    """How many evaluate jobs Snakemake ran (its job stats table), 0 if none."""
    found = re.findall(r"^evaluate\s+(\d+)\s*$", result.stdout + result.stderr, re.MULTILINE)
    return int(found[0]) if found else 0


@pytest.mark.slow
def test_a_grid_grown_after_dvc_repro_runs_exactly_the_new_cells(repo, tmp_path):
    # Paths with spaces: DVC's commands quote them.
    paths = {"results": "my results/runs", "reports": "my reports"}
    babyai = {**SMALL["envs"]["babyai"], "episodes": 1, "max_steps": 4}
    project = make_project(repo, tmp_path / "project",
                           {**SMALL, "paths": paths, "envs": {"babyai": babyai}})
    runs, tables = project / paths["results"], project / paths["reports"] / "tables"

    def with_tasks(*tasks: str) -> str:
        grid = {**SMALL, "paths": paths, "envs": {"babyai": {**babyai, "tasks": list(tasks)}}}
        return yaml.safe_dump(grid)

    def summaries() -> dict[str, int]:
        return {p.parent.name: p.stat().st_mtime_ns for p in runs.glob("*/summary.json")}

    assert evaluate_jobs(sh("dvc", "repro", cwd=project)) == 2
    before = summaries()
    # A config file adding a task: the default target runs that cell alone, then the tables.
    (project / "bigger.yaml").write_text(with_tasks("goto", "pickup", "open"))
    result = sh("snakemake", "--cores", "2", "--configfile", "bigger.yaml", cwd=project)
    assert evaluate_jobs(result) == 1
    assert summaries().items() >= before.items() and len(summaries()) == 3
    assert "open" in (tables / "per_task.csv").read_text()
    # params.yaml itself
    (project / "params.yaml").write_text(with_tasks("goto", "pickup", "open", "putnext"))
    assert evaluate_jobs(sh("snakemake", "--cores", "2", cwd=project)) == 1
    assert "putnext" in (tables / "per_task.csv").read_text()
    # and dvc repro again
    before = summaries()
    (project / "params.yaml").write_text(
        with_tasks("goto", "pickup", "open", "putnext", "pick_up_seq_go_to"))
    assert evaluate_jobs(sh("dvc", "repro", cwd=project)) == 1
    assert summaries().items() >= before.items() and len(summaries()) == 5
    assert "pick_up_seq_go_to" in (tables / "per_task.csv").read_text()
