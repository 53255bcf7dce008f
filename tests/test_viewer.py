"""Issue 19: episodes replayed from their records, written as animations, and browsed in
the viewer (served, and exported beside the report) in headless Chromium."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from PIL import Image

from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig
from balrog_worker.envs import FAMILIES
from balrog_worker.evaluator import run_cell
from balrog_worker.replay import Replay
from balrog_worker.store import read_jsonl
from balrog_worker.viewer import export, serve
from tests.browser import Browser, not_blank
from tests.conftest import run_cli

# One task of every family, each with a few steps of the random model (TextWorld's and
# Crafter's worlds, NetHack's dungeon, MultiGrid's teams: all replayed from the seed).
CELLS = {
    "babyai": ("goto", 8), "minigrid": ("doorkey", 8), "minihack": ("mazewalk_9x9", 8),
    "nethack": ("challenge", 8), "crafter": ("default", 12),
    "textworld": ("coin_collector", 6), "babaisai": ("make_win", 10),
    "multigrid": ("soccer", 6),
}


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """A small real grid: one cell of every family, 2 episodes each."""
    root = tmp_path_factory.mktemp("viewer") / "runs"
    for env, (task, steps) in CELLS.items():
        axes = (1, "egocentric") if FAMILIES[env].multi_agent else (None, None)
        cell = Cell("random", "naive", env, task, *axes)
        config = CellConfig(cell=cell, model=BUILTIN_MODELS["random"],
                            agent=AgentSpec("naive", "naive"), episodes=2, max_steps=steps)
        report = run_cell(config, root / cell.slug)
        assert report.failed == 0
    return root


def cell_of(results: Path, env: str) -> Path:
    return next(p for p in results.iterdir() if f"__{env}__" in p.name)


@pytest.mark.parametrize("env", list(CELLS))
def test_every_family_replays_exactly_as_recorded(results, env):
    cell = cell_of(results, env)
    for index in (0, 1):
        replay = Replay(cell, index)
        replayed = list(replay)
        assert [line for step in replayed for line in step.mismatches] == []
        recorded, _ = read_jsonl(cell / "steps.jsonl")
        mine = [s for s in recorded if s["episode_index"] == index]
        assert len(replayed) == replay.episode["num_steps"] + 1
        # every recorded step was met by the replay, with the text its model was shown
        seen = [(s.step, p) for s in replayed for p in s.records]
        assert sorted(seen) == sorted((s["step"], s["agent_id"]) for s in mine)
        for step in replayed[:-1]:
            for player, record in step.records.items():
                assert step.texts[player] in record["observation"]


def tamper(cell: Path, change) -> None:
    lines = (cell / "steps.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    change(records)
    (cell / "steps.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.mark.parametrize("what", ["action", "reward"])
def test_a_tampered_record_is_flagged(results, tmp_path, what):
    import shutil

    cell = tmp_path / "cell"
    shutil.copytree(cell_of(results, "crafter"), cell)

    def change(records):
        step = next(r for r in records if r["episode_index"] == 0 and r["step"] == 2)
        if what == "action":  # a move into another tile: the next view differs
            step["action"] = "Move West" if step["action"] != "Move West" else "Move East"
        else:
            step["reward"] = step["reward"] + 1.0

    assert run_cli("replay", str(cell), "--episode", "0").returncode == 0
    tamper(cell, change)
    result = run_cli("replay", str(cell), "--episode", "0", check=False)
    assert result.returncode == 1
    assert "does not replay as recorded" in result.stderr
    assert ("reward" in result.stderr) if what == "reward" else ("step 3" in result.stderr)


@pytest.mark.parametrize("env", ["babyai", "crafter", "nethack", "multigrid"])
def test_replay_writes_an_animation_of_one_frame_a_step(results, tmp_path, env):
    cell = cell_of(results, env)
    out = tmp_path / f"{env}.gif"
    run_cli("replay", str(cell), "--episode", "1", "--out", str(out))
    (episode,) = [e for e in read_jsonl(cell / "episodes.jsonl")[0] if e["episode_index"] == 1]
    with Image.open(out) as animation:
        assert animation.n_frames == episode["num_steps"] + 1  # each step, and the end
        animation.seek(1)
        assert len(animation.convert("RGB").getcolors(1 << 16)) > 3  # a picture, not a blank


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    page = Browser(tmp_path_factory.mktemp("chromium"))
    yield page
    page.close()


@pytest.fixture(scope="module")
def server(results):
    httpd = serve(results, port=0)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def open_episode(browser: Browser, slug: str, index: int) -> None:
    browser.wait_for(f"!!document.querySelector('tr[data-cell=\"{slug}\"]')")
    browser.js(f"document.querySelector('tr[data-cell=\"{slug}\"]').click()")
    browser.wait_for(f"!!document.querySelector('tr[data-episode=\"{index}\"]')")
    browser.js(f"document.querySelector('tr[data-episode=\"{index}\"]').click()")
    browser.wait_for("document.body.dataset.view === 'episode'")
    browser.wait_for("[...document.images].every(i => i.complete && i.naturalWidth > 0)")


@pytest.mark.parametrize("env", ["babyai", "multigrid"])
def test_the_viewer_shows_cells_then_plays_an_episode_in_chromium(results, server, browser,
                                                                  env):
    cell = cell_of(results, env)
    browser.open(server)
    assert int(browser.wait_for("document.body.dataset.cells")) == len(CELLS)
    assert not_blank(browser.screenshot())
    open_episode(browser, cell.name, 0)
    steps, _ = read_jsonl(cell / "steps.jsonl")
    first = {s["agent_id"]: s for s in steps if s["episode_index"] == 0 and s["step"] == 0}
    shown = browser.js("[...document.querySelectorAll('pre.observation')].map(p => p.textContent)")
    assert shown == [first[player]["observation"] for player in sorted(first)]
    frames = browser.js("document.querySelectorAll('img.frame').length")
    assert frames == (3 if env == "multigrid" else 1)  # two players and the field
    assert browser.js("document.getElementById('mismatch') === null")
    before = browser.screenshot()
    assert not_blank(before)
    browser.press("ArrowRight", 39)
    assert browser.wait_for("document.body.dataset.step === '1'")
    shown = browser.js("document.querySelector('pre.completion').textContent")
    second = next(s for s in steps if s["episode_index"] == 0 and s["step"] == 1)
    assert shown == second["completion"]
    if env == "multigrid":
        assert "goals_for" in browser.js("document.querySelector('pre.facts').textContent")
        score = browser.js("document.querySelector('p.score').textContent")
        assert score.startswith("score: the team 0, the other 0")
    browser.press("ArrowLeft", 37)
    assert browser.wait_for("document.body.dataset.step === '0'")


def test_the_exported_viewer_works_from_disk(results, tmp_path, browser):
    out = tmp_path / "viewer"
    exported, listed = export(results, out)
    assert exported == 2 * len(CELLS) == sum(map(len, listed.values()))  # every episode
    browser.open((out / "index.html").as_uri())
    assert int(browser.wait_for("document.body.dataset.cells")) == len(CELLS)
    open_episode(browser, cell_of(results, "crafter").name, 1)
    browser.press("ArrowRight", 39)
    assert browser.wait_for("document.body.dataset.step === '1'")
    assert not_blank(browser.screenshot())
