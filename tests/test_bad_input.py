"""Bad params.yaml and cell configs, generated: every one is refused before any work with
exit code 2 and one line naming the bad field, and nothing is written.

The generators break a good config in one place each: an unknown key at any level, a
wrong type (strings, lists, nulls, booleans, floats such as 2.0, NaN) where a count or a
name belongs, a negative or huge count, an unknown model, agent, backend, env or task id,
and ids holding '/', '..', spaces or non-ASCII text. Direct calls of the loaders take many
examples; the commands (`balrog-worker validate`, `balrog-worker run`, `snakemake -n`)
take a few each, derandomized so a failure reproduces.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from balrog_worker import envs
from balrog_worker.agents import AGENTS
from balrog_worker.cells import Cell
from balrog_worker.config import (
    AgentSpec,
    CellConfig,
    ConfigError,
    ModelSpec,
    cell_config_from_dict,
    params_from_dict,
)
from balrog_worker.worker_config import mosaic_cell_config

from .conftest import run_cli

BIN = Path(sys.executable).parent

GOOD_PARAMS = {
    "seed": 1,
    "paths": {"results": "results/runs", "reports": "reports"},
    "evaluation": {"parallel_episodes": 2, "cache": "on"},
    "models": {"random": {"backend": "random", "generation": {"temperature": 0.5}},
               "meta-llama/Llama-3.1-8B": {"backend": "vllm", "model": "m",
                                           "base_url": "http://127.0.0.1:9/v1"}},
    "agents": {"naive": {"max_text_history": 4}},
    "envs": {"babyai": {"tasks": ["goto"], "episodes": 2, "max_steps": 5}},
    "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]},
}
GOOD_MOSAIC = {"worker": "balrog", "model": "random", "backend": "random",
               "environment": "babyai/goto", "num_episodes": 2, "max_steps": 5,
               "history_window": 4, "parallel_workers": 2, "seed": 0}
GOOD_CELL = CellConfig(cell=Cell("random", "naive", "babyai", "goto"),
                       model=ModelSpec("random", "random"), agent=AgentSpec("naive", "naive"),
                       episodes=2, max_steps=5).public()

# Where mappings are (dotted path -> its allowed keys), and the count fields with bounds.
PARAMS_MAPPINGS = {
    "": set(GOOD_PARAMS) | {"prices"},
    "paths": {"results", "reports"},
    "evaluation": {"parallel_episodes", "cache", "budget_usd"},
    "models.random": {"backend", "model", "n_ctx", "threads", "generation", "base_url",
                      "api_key_env", "timeout_s", "max_retries", "concurrency", "price",
                      "constrain_actions"},
    "models.random.generation": {"temperature", "max_tokens", "top_p"},
    "agents.naive": {"type", "max_text_history", "max_cot_history", "max_image_history",
                     "max_icl_history", "demonstrations", "invalid_feedback"},
    "envs.babyai": {"tasks", "episodes", "max_steps", "opponent"},
    "grid": {"models", "agents", "envs", "coordination_levels", "observation_modes"},
}
PARAMS_COUNTS = {  # path -> (minimum, maximum or None)
    "seed": (0, None),
    "evaluation.parallel_episodes": (1, 1024),
    "envs.babyai.episodes": (1, 100_000),
    "envs.babyai.max_steps": (1, 1_000_000),
    "agents.naive.max_text_history": (0, 1000),
    "models.random.generation.max_tokens": (1, 131072),
    "models.random.max_retries": (0, 50),
}
MOSAIC_KEYS = {"worker", "model", "backend", "environment", "task", "agent", "num_episodes",
               "max_steps", "history_window", "parallel_workers", "seed", "base_url",
               "temperature", "max_tokens", "coordination_level", "observation_mode", "role",
               "opponent"}
MOSAIC_COUNTS = {"num_episodes": (1, 100_000), "max_steps": (1, 1_000_000),
                 "history_window": (0, 1000), "parallel_workers": (1, 1024),
                 "seed": (0, None), "max_tokens": (1, None)}
CELL_COUNTS = {"episodes": (1, 100_000), "max_steps": (1, 1_000_000), "seed": (0, None),
               "parallel_episodes": (1, 1024)}

KNOWN_IDS = ({*envs.FAMILIES, *AGENTS, "random", "scripted", "local", "openai", "vllm",
              "openai_compatible", "anthropic", "gemini"}
             | {task for env_id in envs.env_ids() for task in env_id.split("/")})

# Ids that look like paths or are not plain ASCII, plus generated ones from the same
# alphabet (never a known id).
TRICKY_IDS = ["../goto", "..", "a/../b", "babyai/../../etc", "/etc/passwd", "goto/", "go to",
              " naive", "模型", "bäbyai", "ｒａｎｄｏｍ", "naïve", "a\tb", "a\nb", "", ".",
              "~", "$HOME", "a;rm -rf x", "\u202egoto"]
ids = st.one_of(
    st.sampled_from(TRICKY_IDS),
    st.text(alphabet=st.sampled_from(list("ab./ _-:éß模\u00a0\t")), min_size=1, max_size=12),
).filter(lambda text: text not in KNOWN_IDS)
# A value that is no count: strings, lists, maps, nulls, booleans, and any float
# (2.0 included: a count must be an integer, and NaN and the infinities are no numbers).
not_counts = st.one_of(
    st.text(max_size=5), st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1), st.none(),
    st.booleans(), st.floats(allow_nan=True, allow_infinity=True),
)


def bad_count(low: int, high: int | None):
    """An integer outside [low, high]: just outside, or far outside (huge)."""
    below = st.integers(min_value=-(10**30), max_value=low - 1)
    if high is None:
        return below
    return st.one_of(below, st.integers(min_value=high + 1, max_value=10**30))


def set_path(data: dict, path: str, value) -> dict:
    data = copy.deepcopy(data)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


def get_path(data: dict, path: str):
    node = data
    for key in filter(None, path.split(".")):
        node = node[key]
    return node


@st.composite
def bad_params(draw):
    """(params with one fault, the field an error must name: any of these texts)."""
    kind = draw(st.sampled_from(["unknown_key", "type", "count", "grid_id", "env_id",
                                 "task_id", "agent_type", "backend", "name"]))
    data = GOOD_PARAMS
    if kind == "unknown_key":
        where = draw(st.sampled_from(sorted(PARAMS_MAPPINGS)))
        key = draw(st.one_of(ids, st.text(min_size=1, max_size=8)).filter(
            lambda k: k not in PARAMS_MAPPINGS[where]))
        data = copy.deepcopy(GOOD_PARAMS)
        get_path(data, where)[key] = draw(st.integers(0, 3))
        return data, (f"{where or 'top level'}: unknown key",)
    if kind == "type":
        path = draw(st.sampled_from(sorted(PARAMS_COUNTS)))
        return set_path(data, path, draw(not_counts)), (f"{path}:",)
    if kind == "count":
        path = draw(st.sampled_from(sorted(PARAMS_COUNTS)))
        return set_path(data, path, draw(bad_count(*PARAMS_COUNTS[path]))), (f"{path}:",)
    if kind == "grid_id":
        axis = draw(st.sampled_from(["models", "agents", "envs"]))
        return set_path(data, f"grid.{axis}", [draw(ids)]), (f"grid.{axis}",)
    if kind == "env_id":
        data = {**data, "envs": {**data["envs"], draw(ids): {"tasks": ["goto"]}}}
        return data, ("envs",)
    if kind == "task_id":
        return set_path(data, "envs.babyai.tasks", [draw(ids)]), ("envs.babyai",)
    if kind == "agent_type":
        return set_path(data, "agents.naive.type", draw(ids)), ("agents.naive.type",)
    if kind == "backend":
        return set_path(data, "models.random.backend", draw(ids)), ("models.random.backend",)
    # a model entry whose name is not a valid name, played by the grid
    name = draw(ids.filter(lambda n: not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._/:-]*", n)
                           or ".." in n))
    data = copy.deepcopy(GOOD_PARAMS)
    data["models"][name] = {"backend": "random"}
    data["grid"]["models"] = [name]
    return data, ("models",)


@st.composite
def bad_mosaic(draw):
    """(a MOSAIC cell config with one fault, the texts of which an error names one)."""
    kind = draw(st.sampled_from(["unknown_key", "type", "count", "environment", "task",
                                 "backend", "agent", "model", "float"]))
    data = dict(GOOD_MOSAIC)
    if kind == "unknown_key":
        key = draw(st.one_of(ids, st.text(min_size=1, max_size=8)).filter(
            lambda k: k not in MOSAIC_KEYS))
        return {**data, key: 1}, ("unknown key",)
    if kind in ("type", "count"):
        key = draw(st.sampled_from(sorted(MOSAIC_COUNTS)))
        value = draw(not_counts if kind == "type" else bad_count(*MOSAIC_COUNTS[key]))
        return {**data, key: value}, (f"{key}:",)
    if kind == "environment":
        return {**data, "environment": draw(ids)}, ("environment",)
    if kind == "task":
        return {**data, "environment": "babyai", "task": draw(ids)}, ("task",)
    if kind in ("backend", "agent"):
        return {**data, kind: draw(ids)}, (f"{kind}:",)
    if kind == "model":  # a model id with nothing to name a directory after
        return {**data, "model": draw(st.text(alphabet="./ -模é\t", max_size=6))}, ("model",)
    return {**data, "temperature": draw(st.sampled_from([float("nan"), float("inf"), -1.0,
                                                          "hot", None]))}, ("temperature:",)


@st.composite
def bad_cell(draw):
    """(a resolved cell config, as Snakemake writes it, with one fault, expected texts)."""
    kind = draw(st.sampled_from(["unknown_key", "count", "type", "env", "task", "backend",
                                 "agent_type", "model_key"]))
    data = copy.deepcopy(GOOD_CELL)
    if kind == "unknown_key":
        where = draw(st.sampled_from(["", "cell"]))
        key = draw(st.one_of(ids, st.text(min_size=1, max_size=8)).filter(
            lambda k: k not in get_path(data, where)))
        get_path(data, where)[key] = 1
        return data, ("unknown key",)
    if kind in ("count", "type"):
        key = draw(st.sampled_from(sorted(CELL_COUNTS)))
        value = draw(bad_count(*CELL_COUNTS[key]) if kind == "count" else
                     not_counts.filter(lambda v: not (key == "max_steps" and v is None)))
        data[key] = value
        return data, (f"{key}:",)
    if kind in ("env", "task"):
        data["cell"][kind] = draw(ids)
        return data, ("cell",)
    if kind == "backend":
        data["model"]["backend"] = draw(ids)
        return data, ("model",)
    if kind == "agent_type":
        data["agent"]["type"] = draw(ids)
        return data, ("agent",)
    data["model"][draw(st.text(min_size=1, max_size=6).filter(
        lambda k: k not in data["model"]))] = 1
    return data, ("model",)


def assert_names_the_field(message: str, expected: tuple[str, ...]):
    assert "\n" not in message.strip(), message
    assert "Traceback" not in message
    assert any(text in message for text in expected), (expected, message)


# --- the loaders, called directly: many examples --------------------------------------

@settings(max_examples=400, deadline=None, derandomize=True)
@given(bad_params())
def test_params_loader_refuses_every_fault_naming_the_field(case):
    data, expected = case
    with pytest.raises(ConfigError) as caught:
        params_from_dict(data, source="params.yaml")
    message = str(caught.value)
    assert message.startswith("params.yaml: ")
    assert_names_the_field(message, expected)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(bad_mosaic())
def test_mosaic_loader_refuses_every_fault_naming_the_field(case):
    data, expected = case
    with pytest.raises(ConfigError) as caught:
        mosaic_cell_config(data, source="cell.json")
    assert_names_the_field(str(caught.value), expected)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(bad_cell())
def test_resolved_cell_loader_refuses_every_fault_naming_the_field(case):
    data, expected = case
    with pytest.raises(ConfigError) as caught:
        cell_config_from_dict(data, source="cell.json")
    assert_names_the_field(str(caught.value), expected)


SAFE_COMPONENT = re.compile(r"[A-Za-z0-9._-]*[A-Za-z0-9][A-Za-z0-9._-]*")


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.one_of(ids, st.text(max_size=20)), st.sampled_from(["params", "mosaic"]))
def test_any_accepted_name_becomes_one_safe_directory_name(name, form):
    """Whatever a model name holds ('/', '..', spaces, unicode), it is either refused in
    one line or turned into a single safe path component under the results directory."""
    try:
        if form == "params":
            data = copy.deepcopy(GOOD_PARAMS)
            data["models"][name] = {"backend": "random"}
            data["grid"]["models"] = [name]
            slugs = [cell.slug for cell in params_from_dict(data).cells()]
        else:
            slugs = [mosaic_cell_config({**GOOD_MOSAIC, "model": name}).run_id]
    except ConfigError as error:
        assert "\n" not in str(error)
        return
    for slug in slugs:
        assert SAFE_COMPONENT.fullmatch(slug) and slug not in (".", ".."), slug
        results = Path("/r/results")
        assert (results / slug).resolve().parent == results


# --- the commands, in subprocesses: a few examples each -------------------------------

def _call(args: list[str], work: Path, cache: Path):
    return run_cli(*args, cwd=work, check=False, env={"BALROG_WORKER_CACHE": str(cache)})


def _refused_and_nothing_written(result, work: Path, cache: Path, expected):
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert re.match(r"balrog-worker( run)?: error: ", result.stderr), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert_names_the_field(result.stderr, expected)
    assert result.stdout == ""
    assert list(work.iterdir()) == [], list(work.iterdir())
    assert not cache.exists()


CLI_SETTINGS = settings(max_examples=15, deadline=None, derandomize=True,
                        suppress_health_check=[HealthCheck.too_slow])


@CLI_SETTINGS
@given(bad_params())
def test_validate_command_refuses_bad_params_in_one_line(case):
    data, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work, inputs = tmp / "work", tmp / "in"
        work.mkdir(), inputs.mkdir()
        (inputs / "params.yaml").write_text(yaml.safe_dump(data, allow_unicode=True))
        result = _call(["validate", str(inputs / "params.yaml")], work, tmp / "cache")
        _refused_and_nothing_written(result, work, tmp / "cache", expected)


@CLI_SETTINGS
@given(st.one_of(bad_mosaic(), bad_cell()))
def test_run_command_refuses_a_bad_cell_json_before_writing(case):
    data, expected = case
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        work, inputs = tmp / "work", tmp / "in"
        work.mkdir(), inputs.mkdir()
        (inputs / "cell.json").write_text(json.dumps(data, ensure_ascii=False))
        result = _call(["run", "--config", str(inputs / "cell.json"), "--out", "out"], work,
                       tmp / "cache")
        _refused_and_nothing_written(result, work, tmp / "cache", expected)


FLAG_FIELDS = {"--env": ("env",), "--task": ("task",), "--model": ("model",),
               "--agent": ("agent",)}


@CLI_SETTINGS
@given(st.one_of(
    st.tuples(st.sampled_from(sorted(FLAG_FIELDS)), ids),
    st.tuples(st.sampled_from(["--episodes", "--max-steps", "--parallel", "--seed"]),
              st.one_of(st.integers(max_value=-1), st.integers(min_value=10**7),
                        st.sampled_from(["2.0", "nan", "ten", "", "1e9", "0x10"]))),
))
def test_run_command_refuses_bad_flags_in_one_line(case):
    flag, value = case
    args = {"--env": "babyai", "--task": "goto", "--model": "random", "--agent": "naive",
            flag: str(value)}
    if flag == "--env":
        args.pop("--task")  # the id alone, as in --env babyai/goto
    name = flag.lstrip("-").replace("-", "_")
    if flag in ("--max-steps", "--parallel") and isinstance(value, int) and value > 0:
        expected = ({"--max-steps": "max_steps", "--parallel": "parallel_episodes"}[flag],)
    elif flag in ("--seed",) and isinstance(value, int) and value > 0:
        return  # any non-negative integer is a seed
    else:
        expected = FLAG_FIELDS.get(flag, (flag, name))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "work").mkdir()
        result = _call(["run", *[x for pair in args.items() for x in pair], "--out", "out"],
                       tmp / "work", tmp / "cache")
        _refused_and_nothing_written(result, tmp / "work", tmp / "cache", expected)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"models: [unclosed", "is not valid YAML"),
        (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
        (b"", "top level: None is not of type 'object'"),
        (b"- just\n- a list\n", "top level:"),
        (b"seed: .nan\n" + yaml.safe_dump({k: v for k, v in GOOD_PARAMS.items()
                                           if k != "seed"}).encode(),
         "seed: nan is not of type 'integer'"),
        (yaml.safe_dump(set_path(GOOD_PARAMS, "evaluation.budget_usd", float("inf"))).encode(),
         "evaluation.budget_usd: inf is not of type 'number'"),
    ],
)
def test_validate_refuses_unreadable_files_in_one_line(tmp_path, content, expected):
    (tmp_path / "work").mkdir()
    (tmp_path / "params.yaml").write_bytes(content)
    result = _call(["validate", str(tmp_path / "params.yaml")], tmp_path / "work",
                   tmp_path / "cache")
    _refused_and_nothing_written(result, tmp_path / "work", tmp_path / "cache", (expected,))


def test_run_refuses_a_directory_or_non_json_as_its_config(tmp_path):
    (tmp_path / "work").mkdir()
    (tmp_path / "bad.json").write_text('{"model": "random", "backend": ')
    for config, expected in ((tmp_path, "cannot read config file"),
                             (tmp_path / "bad.json", "not valid JSON")):
        result = _call(["run", "--config", str(config), "--out", "out"], tmp_path / "work",
                       tmp_path / "cache")
        _refused_and_nothing_written(result, tmp_path / "work", tmp_path / "cache",
                                     (expected,))


# --- snakemake -n on a bad params.yaml: the workflow stops before planning any job -----

SNAKEMAKE_CASES = [
    ("envs.babyai.episodes", 2.0, "envs.babyai.episodes: 2.0 is not of type 'integer'"),
    ("envs.babyai.max_steps", 10**12, "envs.babyai.max_steps: 1000000000000 is greater"),
    ("grid.models", ["a/../b"], "grid.models.0: 'a/../b' is not a valid name"),
    ("envs.babyai.tasks", ["模型"], "envs.babyai: unknown task '模型'"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("path", "value", "expected"), SNAKEMAKE_CASES,
                         ids=[case[0] for case in SNAKEMAKE_CASES])
def test_snakemake_dry_run_refuses_bad_params_in_one_line(repo, tmp_path, path, value,
                                                           expected):
    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump(set_path(GOOD_PARAMS, path, value), allow_unicode=True))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "BALROG_WORKER_CACHE": str(tmp_path / "cache")}
    snakemake = shutil.which("snakemake", path=str(BIN)) or "snakemake"
    result = subprocess.run([snakemake, "-n", "--snakefile", str(repo / "Snakefile"),
                             "--directory", str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("invalid params: ")]
    assert len(errors) == 1 and errors[0].startswith("invalid params: params: "), output
    assert expected in errors[0], errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
