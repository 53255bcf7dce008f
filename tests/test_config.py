"""Bad params and cell configs fail before any work with one line naming the field."""

import copy
import json

import pytest
import yaml

from balrog_worker.cells import Cell, slugify
from balrog_worker.config import (
    ConfigError,
    cell_config_from_dict,
    load_params,
    params_from_dict,
)

GOOD = {
    "models": {"random": {"backend": "random"},
               "meta-llama/Llama-3.1-8B": {"backend": "local", "model": "/m/llama.gguf"}},
    "agents": {"naive": {"max_text_history": 4}},
    "envs": {"babyai": {"tasks": ["goto", "open"], "episodes": 3, "max_steps": 10}},
    "grid": {"models": ["random", "meta-llama/Llama-3.1-8B"], "agents": ["naive"],
             "envs": ["babyai"]},
}


def broken(path: str, value):
    """GOOD with the dotted ``path`` set to ``value`` (``...`` deletes it)."""
    data = copy.deepcopy(GOOD)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


def test_the_grid_crosses_models_agents_and_tasks():
    params = params_from_dict(GOOD)
    cells = params.cells()
    assert len(cells) == 2 * 1 * 2
    assert Cell("meta-llama/Llama-3.1-8B", "naive", "babyai", "open") in cells
    config = params.cell_config(cells[0])
    assert (config.episodes, config.max_steps, config.agent.max_text_history) == (3, 10, 4)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("models.random.backnd", "x", "models.random: unknown key 'backnd'"),
        ("models.random.backend", "gpt", "models.random.backend: 'gpt' is not one of"),
        ("envs.babyai.episodes", -1, "envs.babyai.episodes: -1 is less than the minimum"),
        ("envs.babyai.episodes", "many", "envs.babyai.episodes: 'many' is not of type"),
        ("envs.babyai.max_steps", 10**9, "envs.babyai.max_steps"),
        ("envs.babyai.tasks", ["goto", "fly"], "envs.babyai: unknown task 'fly'"),
        ("envs.nethacc", {"tasks": ["x"]}, "envs.nethacc: unknown env 'nethacc'"),
        ("grid.models", ["gpt-5"], "grid.models: 'gpt-5' is not defined under models"),
        ("grid", ..., "'grid' is required"),
        ("agents.naive.type", "clever", "agents.naive.type: 'clever' is not one of"),
        ("seed", 1.5, "seed: 1.5 is not of type 'integer'"),
    ],
)
def test_bad_params_name_the_field_in_one_line(path, value, expected):
    with pytest.raises(ConfigError) as caught:
        params_from_dict(broken(path, value), source="params.yaml")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("params.yaml: ")
    assert expected in message, message


def test_models_whose_names_collide_as_directories_are_refused():
    data = copy.deepcopy(GOOD)
    data["models"]["meta-llama:Llama-3.1-8B"] = {"backend": "random"}
    data["grid"]["models"] = ["meta-llama/Llama-3.1-8B", "meta-llama:Llama-3.1-8B"]
    with pytest.raises(ConfigError, match=r"same directory name 'meta-llama-Llama-3\.1-8B'"):
        params_from_dict(data)


def test_slugs_are_filesystem_safe_and_readable():
    assert slugify("meta-llama/Llama-3.1-8B") == "meta-llama-Llama-3.1-8B"
    assert slugify("../../etc passwd") == "etc-passwd"
    assert slugify("qwen2.5:0.5b__x") == "qwen2.5-0.5b-x"
    slug = Cell("meta-llama/Llama-3.1-8B", "naive", "babyai", "goto").slug
    assert slug == "meta-llama-Llama-3.1-8B__naive__babyai__goto"
    assert "/" not in slug
    with pytest.raises(ValueError):
        slugify("///")


def test_load_params_reports_yaml_errors_and_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed\n")
    with pytest.raises(ConfigError, match="line 2 is not valid YAML"):
        load_params(bad)


def test_the_default_params_cover_every_environment(repo):
    from balrog_worker.envs import FAMILIES

    params = load_params(repo / "params.yaml")
    assert {c.env for c in params.cells()} == set(FAMILIES)
    babyai = {c.task for c in params.cells() if c.env == "babyai"}
    assert babyai == {"goto", "pickup", "open", "putnext", "pick_up_seq_go_to"}
    assert {c.model for c in params.cells()} == {"random", "scripted", "qwen2.5-coder-0.5b"}
    levels_modes = {(c.coordination_level, c.observation_mode) for c in params.cells()
                    if c.env == "multigrid"}
    assert len(levels_modes) == 6


def test_the_paper_params_are_balrogs_protocol(repo, tmp_path):
    """config/paper.yaml: BALROG's tasks, episodes, caps, client and agent settings; its
    Boxoban tasks need nothing beyond the package."""
    paper = load_params(repo / "config/paper.yaml")
    assert paper.envs["minihack"].tasks == (
        "boxoban_hard", "boxoban_medium", "mazewalk_9x9", "mazewalk_15x15", "corridor_r3",
        "corridorbattle_dark", "quest_easy", "quest_medium")
    assert paper.envs["textworld"].tasks == (
        "treasure_hunter", "the_cooking_game", "coin_collector")
    assert {env: (spec.episodes, spec.max_steps) for env, spec in paper.envs.items()} == {
        "babyai": (10, None), "crafter": (10, 2000), "textworld": (10, 80),
        "minihack": (5, 100), "nethack": (5, 100_000), "babaisai": (3, 100),
        "multigrid": (20, None)}
    assert len(paper.envs["babaisai"].tasks) == 40
    for name, model in paper.models.items():
        if model.backend in ("openai", "anthropic", "gemini", "local"):
            assert (model.generation.temperature, model.generation.max_tokens) == (1.0, 8192)
        if model.backend in ("openai", "anthropic", "gemini"):
            assert (model.timeout_s, model.max_retries) == (60, 5), name
    for agent in paper.agents.values():
        assert (agent.max_text_history, agent.max_image_history, agent.max_cot_history,
                agent.invalid_feedback, agent.answer_parsing) == (16, 0, 1, True, "strict")


def test_workflow_schema_is_the_package_schema(repo):
    from balrog_worker.config import params_schema

    workflow_copy = yaml.safe_load((repo / "workflow/schemas/params.schema.yaml").read_text())
    assert workflow_copy == params_schema()


def test_agent_types_in_schema_match_the_registry():
    from balrog_worker.agents import AGENTS
    from balrog_worker.config import params_schema

    assert params_schema()["$defs"]["agent"]["properties"]["type"]["enum"] == list(AGENTS)


def test_cell_config_round_trips_and_rejects_bad_fields():
    params = params_from_dict(GOOD)
    config = params.cell_config(params.cells()[-1])
    assert cell_config_from_dict(config.public()) == config
    data = config.public()
    data["model"]["temprature"] = 0.5
    with pytest.raises(ConfigError, match="model: top level: unknown key 'temprature'"):
        cell_config_from_dict(data)
    data = config.public()
    data["cell"]["task"] = "fly"
    with pytest.raises(ConfigError, match="unknown task 'fly'"):
        cell_config_from_dict(data)


def test_the_evaluation_settings_of_params_reach_every_cell():
    """params.yaml's evaluation.cache and budget_usd were read and then dropped: every
    cell of the pipeline ran with the cache on and no budget (found by the SLURM test)."""
    data = {**GOOD, "evaluation": {"cache": "off", "budget_usd": 2.5, "parallel_episodes": 3}}
    params = params_from_dict(data)
    for cell in params.cells():
        config = cell_config_from_dict(params.cell_config(cell).public())
        assert (config.cache, config.budget_usd, config.parallel_episodes) == ("off", 2.5, 3)
    # What the command line gives wins (run --params --cache refresh).
    assert params.cell_config(params.cells()[0], cache="refresh").cache == "refresh"


def test_a_grid_of_blocks_unites_their_cells_and_checks_each_block():
    data = copy.deepcopy(GOOD)
    data["grid"] = [GOOD["grid"], {"models": ["scripted", "random"], "agents": ["naive"],
                                   "envs": ["babyai"]}]
    cells = params_from_dict(data).cells()
    assert len(cells) == 4 + 2  # the random cells of the second block are not repeated
    assert Cell("scripted", "naive", "babyai", "goto") in cells
    data["grid"][1]["agnts"] = data["grid"][1].pop("agents")
    with pytest.raises(ConfigError, match=r"grid\.1: unknown key 'agnts'"):
        params_from_dict(data)


def test_the_scripted_baseline_is_refused_where_there_is_no_oracle():
    data = copy.deepcopy(GOOD)
    data["envs"]["minigrid"] = {"tasks": ["empty"]}
    data["grid"] = {"models": ["scripted"], "agents": ["naive"], "envs": ["minigrid"]}
    with pytest.raises(ConfigError, match="env 'minigrid' has no scripted oracle"):
        params_from_dict(data)


def test_balrogs_names_work_in_params_cell_configs_and_the_cli(tmp_path):
    from balrog_worker.config import cell_config_from_dict, params_from_dict

    from .conftest import run_cli

    params = params_from_dict({
        "models": {"random": {"backend": "random"}}, "agents": {"naive": {}},
        "envs": {"nle": {"tasks": ["NetHackChallenge-v0"], "episodes": 1},
                 "babyai": {"tasks": ["BabyAI-MixedTrainLocal-v0/goto", "pickup"]},
                 "minihack": {"tasks": ["MiniHack-MazeWalk-9x9-v0"]}},
        "grid": {"models": ["random"], "agents": ["naive"], "envs": ["nle", "babyai",
                                                                     "minihack"]}})
    assert {(c.env, c.task) for c in params.cells()} == {
        ("nethack", "challenge"), ("babyai", "goto"), ("babyai", "pickup"),
        ("minihack", "mazewalk_9x9")}
    public = params.cell_config(params.cells()[0]).public()
    public["cell"] = {**public["cell"], "env": "nle", "task": "NetHackChallenge-v0"}
    public.pop("run_id")
    assert cell_config_from_dict(public).cell.env == "nethack"
    run_cli("run", "--env", "nle", "--task", "NetHackChallenge-v0", "--model", "random",
            "--episodes", "1", "--max-steps", "2", "--out", str(tmp_path / "a"), cwd=tmp_path)
    run_cli("run", "--env", "BabyAI-MixedTrainLocal-v0/putnext", "--model", "random",
            "--episodes", "1", "--max-steps", "2", "--out", str(tmp_path / "b"), cwd=tmp_path)
    episodes = [json.loads((tmp_path / d / "episodes.jsonl").read_text()) for d in "ab"]
    assert [(e["env"], e["task"]) for e in episodes] == [("nethack", "challenge"),
                                                        ("babyai", "putnext")]
