"""The one episode engine: layers that import only downwards, one step protocol for every
game, typed records that round-trip through the reader, and multi-agent steps recorded
exactly as each player's model saw them (text and frames)."""

import json
import subprocess
import sys

import pytest

from balrog_worker import envs
from balrog_worker.analysis.load import EPISODE_SCHEMA, STEP_SCHEMA, load_episodes, scan_steps
from balrog_worker.cells import Cell
from balrog_worker.config import BUILTIN_MODELS, AgentSpec, CellConfig, ModelSpec
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl
from tests.stubs import StubServer, openai_server

# Each module with what it may import of the project (besides itself and its package).
LAYERS = {
    "balrog_worker.vocab": set(),
    "balrog_worker.secrets": set(),
    "balrog_worker.records": set(),
    "balrog_worker.envs": {"balrog_worker.envs.base"},
    "balrog_worker.config": {"balrog_worker.vocab", "balrog_worker.cells", "balrog_worker.envs",
                             "balrog_worker.envs.base", "balrog_worker.secrets",
                             "balrog_worker.seeding", "balrog_worker.documents"},
    "balrog_worker.multigrid.game": {"balrog_worker.envs", "balrog_worker.envs.base",
                                     "balrog_worker.vocab", "balrog_worker.seeding",
                                     "balrog_worker.multigrid"},
}
# Nothing below the episode loop may import these.
UPPER = ("balrog_worker.episode", "balrog_worker.evaluator", "balrog_worker.serve",
         "balrog_worker.cli", "balrog_worker.analysis")


def upper(name: str) -> bool:
    return any(name == top or name.startswith(top + ".") for top in UPPER)


def imported_by(module: str) -> set[str]:
    code = (f"import sys, {module}; print(' '.join(m for m in sys.modules "
            "if m.startswith('balrog_worker')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    return set(out) - {"balrog_worker", module}


@pytest.mark.parametrize("module", list(LAYERS))
def test_each_layer_imports_only_what_lies_below_it(module):
    imported = imported_by(module)
    package = module if module.count(".") == 1 else module.rsplit(".", 1)[0]
    own = {m for m in imported if m.startswith(package + ".")}
    assert imported - own <= LAYERS[module], imported - own - LAYERS[module]


def test_config_imports_no_agent_client_or_game_module():
    imported = imported_by("balrog_worker.config")
    assert not {m for m in imported if m.startswith(("balrog_worker.agents",
                                                     "balrog_worker.clients",
                                                     "balrog_worker.multigrid"))}
    assert not {m for m in imported if upper(m)}


def test_agents_and_clients_stay_below_the_episode_loop():
    for module in ("balrog_worker.agents", "balrog_worker.clients"):
        assert not {m for m in imported_by(module) if upper(m)}, module


def test_the_agent_registry_is_the_vocabulary():
    from balrog_worker.agents import AGENTS
    from balrog_worker.vocab import AGENT_TYPES

    assert tuple(AGENTS) == AGENT_TYPES


def test_every_family_opens_as_a_players_game():
    for env_id in envs.env_ids():
        env, task = env_id.split("/")
        options = ({"coordination_level": 3, "observation_mode": "visible_teammates"}
                   if envs.FAMILIES[env].multi_agent else {})
        game = envs.open_game(env, task, **options)
        try:
            observations = game.reset(1)
            assert set(observations) == set(game.players) and game.players
            turn = game.step({p: game.default_action(p) for p in game.players})
            assert set(turn.observations) == set(turn.rewards) == set(game.players)
            assert all(game.instructions(p) for p in game.players)
        finally:
            game.close()


def cell_config(env, task, **extra):
    level = 2 if envs.FAMILIES[env].multi_agent else None
    mode = "egocentric" if level else None
    return CellConfig(cell=Cell("random", "naive", env, task, level, mode),
                      model=BUILTIN_MODELS["random"], agent=AgentSpec("naive", "naive"),
                      episodes=1, max_steps=3, **extra)


@pytest.mark.parametrize("env", list(envs.FAMILIES))
def test_records_round_trip_through_the_reader_for_every_family(env, tmp_path):
    task = envs.FAMILIES[env].task_ids()[0]
    run_cell(cell_config(env, task), tmp_path / "cell")
    (written,) = read_jsonl(tmp_path / "cell" / "episodes.jsonl")[0]
    episodes = load_episodes(tmp_path)
    row = episodes.row(0, named=True)
    for name in EPISODE_SCHEMA:
        if name in episodes.columns:
            assert row[name] == written.get(name), name
    steps_written = read_jsonl(tmp_path / "cell" / "steps.jsonl")[0]
    steps = scan_steps(tmp_path, episodes).collect().sort(["step", "agent_id"])
    assert steps.height == len(steps_written)
    by_key = {(s["step"], s["agent_id"]): s for s in steps_written}
    for read in steps.iter_rows(named=True):
        original = by_key[read["step"], read["agent_id"]]
        assert {name: read[name] for name in STEP_SCHEMA} == {
            name: original[name] for name in STEP_SCHEMA}


def run_stub_cell(tmp_path, monkeypatch, answer, **agent_fields):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-engine-123456")
    with StubServer(openai_server.ok_body, openai_server.error_body, answer=answer) as stub:
        model = ModelSpec("stub", "openai", model="gpt-test", base_url=stub.url + "/v1")
        config = CellConfig(cell=Cell("stub", "naive", "multigrid", "soccer", 1, "egocentric"),
                            model=model, agent=AgentSpec("naive", "naive", **agent_fields),
                            episodes=1, max_steps=3, cache="off")
        run_cell(config, tmp_path / "out")
        requests = [r["body"] for r in stub.requests]
    steps, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    return steps, requests


def content_text(message: dict) -> str:
    content = message["content"]
    if isinstance(content, str):
        return content
    return "".join(part.get("text", "") for part in content if part.get("type") == "text")


def test_multigrid_steps_record_exactly_what_each_model_received(tmp_path, monkeypatch):
    steps, requests = run_stub_cell(tmp_path, monkeypatch, "kick the ball hard")
    assert len(steps) == 2 * 3 and not any(s["valid"] for s in steps)
    last_messages = [content_text(body["messages"][-1]) for body in requests]
    for step in steps:
        assert step["action"] == "noop"
        # The record holds the observation as sent, before the answer format.
        assert sum(text.startswith(step["observation"] + "\n\n") for text in last_messages) >= 1
    later = [s for s in steps if s["step"] > 0]
    assert all("Your previous output did not contain a valid action. Defaulted to action: "
               "noop" in s["observation"] for s in later)


def test_a_multigrid_vision_agent_gets_each_players_frame_every_step(tmp_path, monkeypatch):
    _, requests = run_stub_cell(tmp_path, monkeypatch, "forward", max_image_history=1)
    assert len(requests) == 2 * 3  # two players, three steps
    for body in requests:
        images = [part for message in body["messages"] if isinstance(message["content"], list)
                  for part in message["content"] if part.get("type") == "image_url"]
        assert len(images) == 1  # the current observation's frame, this player's own view
    frames = {json.dumps(body["messages"][-1]["content"]) for body in requests[:2]}
    assert len(frames) == 2  # the two players see different views


def test_two_models_play_soccer_against_each_other(tmp_path, monkeypatch):
    """opponent: model:<name> gives the other team to a second model: every player's
    steps are recorded, the cell is scored on the first team, the second model's calls are
    reported apart, and each model is asked for its own team only."""
    from balrog_worker.config import params_from_dict

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-engine-123456")
    with StubServer(openai_server.ok_body, openai_server.error_body, answer="forward") as stub:
        url = stub.url + "/v1"
        params = params_from_dict({
            "models": {"home": {"backend": "openai", "model": "gpt-home", "base_url": url},
                       "away": {"backend": "openai", "model": "gpt-away", "base_url": url}},
            "agents": {"naive": {}},
            "envs": {"multigrid": {"tasks": ["soccer"], "episodes": 1, "max_steps": 3,
                                   "opponent": "model:away"}},
            "grid": {"models": ["home"], "agents": ["naive"], "envs": ["multigrid"],
                     "coordination_levels": [3], "observation_modes": ["egocentric"]}})
        (cell,) = params.cells()
        config = params.cell_config(cell, cache="off")
        assert config.opponent_model.name == "away"
        assert config.calls_in_flight("openai") == 2 * 2  # two players per model
        run_cell(config, tmp_path / "out")
        asked = [(r["body"]["model"], r["body"]["messages"][0]["content"])
                 for r in stub.requests]
    steps, _ = read_jsonl(tmp_path / "out" / "steps.jsonl")
    (episode,) = read_jsonl(tmp_path / "out" / "episodes.jsonl")[0]
    assert sorted({s["agent_id"] for s in steps}) == ["agent_0", "agent_1", "agent_2",
                                                      "agent_3"]
    assert len(steps) == 4 * 3 and all(s["valid"] for s in steps)
    assert episode["focal_agents"] == ["agent_0", "agent_1"]
    assert episode["llm_calls"] == 2 * 3 and episode["opponent_llm_calls"] == 2 * 3
    home = [text for model, text in asked if model == "gpt-home"]
    away = [text for model, text in asked if model == "gpt-away"]
    assert len(home) == len(away) == 6
    assert all("of the green team" in text for text in home)
    assert all("of the blue team" in text for text in away)
    assert all("Your role:" in text for text in home + away)  # level 3: both teams have roles
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["opponent_model"][
        "name"] == "away"
