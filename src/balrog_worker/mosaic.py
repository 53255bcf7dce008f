"""MOSAIC's BALROG worker, verbatim: its command line, its config JSON, its events.

MOSAIC's GUI (``gym_gui/services/operator_launcher.py``) starts
``python -m balrog_worker.cli --run-id ID --env ENV --task TASK --client CLIENT --model MODEL
--agent-type TYPE --num-episodes N --max-steps S --temperature T --telemetry-dir DIR -v
[--interactive] [--base-url URL] [--api-key KEY] --max-image-history H --render-mode
rgb_array``; the flags and the ``BarlogWorkerConfig`` JSON fields here are those of MOSAIC's
worker (``3rd_party/workers/balrog_worker/balrog_worker/{cli,config}.py`` at 8dc806e).

Underneath, the cell runs as ``balrog-worker run`` runs it (records, resume, seeds,
response cache in ``<telemetry-dir>/<run-id>/``); MOSAIC's events on stdout and its
``<run-id>_steps.jsonl`` / ``<run-id>_episodes.jsonl`` are a projection of those records.
The key MOSAIC passes in argv is read into this process's environment under a private
name and never written, logged or echoed.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from pathlib import Path
from typing import TextIO

from balrog_worker import __version__, documents, envs
from balrog_worker.cells import Cell
from balrog_worker.config import (
    AgentSpec,
    CellConfig,
    ConfigError,
    Generation,
    ModelSpec,
)
from balrog_worker.mosaic_events import MosaicStream, committed_records, error_event, write_event
from balrog_worker.mosaic_selector import SELECTOR_ENVS
from balrog_worker.vocab import AGENT_TYPES, COORDINATION_LEVELS, OBSERVATION_MODES

# MOSAIC's vocabularies (its config.py).
ENV_NAMES = ("babyai", "minigrid", "multigrid", "minihack", "crafter", "nle", "textworld",
             *SELECTOR_ENVS)
CLIENT_NAMES = ("openrouter", "openai", "anthropic", "google", "vllm")
MOSAIC_AGENT_TYPES = (*AGENT_TYPES, "dummy")
OPENROUTER_URL = "https://openrouter.ai/api/v1"
VLLM_URL = "http://localhost:8000/v1"
# client -> (our backend, the variable its key is read from by default)
CLIENTS = {"openrouter": ("openai_compatible", "OPENROUTER_API_KEY"),
           "openai": ("openai", None), "anthropic": ("anthropic", None),
           "google": ("gemini", None), "vllm": ("vllm", None)}
# The variable a key given in argv (or in a config file) is kept in, for this process only.
ARGV_KEY_VARIABLE = "BALROG_WORKER_MOSAIC_API_KEY"

# BarlogWorkerConfig's fields and defaults.
DEFAULTS = {
    "run_id": None, "env_name": "babyai", "task": "BabyAI-GoToRedBall-v0",
    "client_name": "openrouter", "model_id": "openai/gpt-4o-mini", "agent_type": "naive",
    "num_episodes": 5, "max_steps": 100, "temperature": 0.7, "api_key": None,
    "base_url": None, "telemetry_dir": "./telemetry", "emit_jsonl": True, "seed": None,
    "render_mode": None, "max_retries": 3, "retry_delay": 1.0, "timeout": 60.0,
    "alternate_roles": True, "max_image_history": 0, "agent_id": 0,
    "observation_mode": "visible_teammates", "coordination_level": 1, "role": None,
}


# The JSON types each field may hold (a config file comes from a GUI or a user).
_TEXT, _WHOLE, _NUMBER, _FLAG = (str,), (int,), (int, float), (bool,)
FIELD_TYPES = {
    "run_id": _TEXT, "env_name": _TEXT, "task": _TEXT, "client_name": _TEXT,
    "model_id": _TEXT, "agent_type": _TEXT, "num_episodes": _WHOLE, "max_steps": _WHOLE,
    "temperature": _NUMBER, "api_key": _TEXT, "base_url": _TEXT, "telemetry_dir": _TEXT,
    "emit_jsonl": _FLAG, "seed": _WHOLE, "render_mode": _TEXT, "max_retries": _WHOLE,
    "retry_delay": _NUMBER, "timeout": _NUMBER, "alternate_roles": _FLAG,
    "max_image_history": _WHOLE, "agent_id": _WHOLE, "observation_mode": _TEXT,
    "coordination_level": _WHOLE, "role": _TEXT,
}
# Fields that may be null (MOSAIC's Optional ones; a null telemetry_dir is the default).
_NULLABLE = {name for name, value in DEFAULTS.items() if value is None} | {"telemetry_dir"}
_KIND = {_TEXT: "text", _WHOLE: "a whole number", _NUMBER: "a number", _FLAG: "true or false"}
_JSON_TYPE = {str: "text", int: "a whole number", float: "a fraction", bool: "true or false",
              list: "a list", dict: "an object", type(None): "null"}


def _check_types(settings: dict) -> None:
    """One line naming the first field whose value is of the wrong JSON type."""
    for name, kinds in FIELD_TYPES.items():
        value = settings.get(name)
        if value is None and name in _NULLABLE:
            continue
        fits = isinstance(value, kinds) and (kinds == _FLAG or not isinstance(value, bool))
        if not fits:  # the value itself is not shown: it may be a key
            raise ConfigError(f"--config: {name} must be {_KIND[kinds]}, not "
                              f"{_JSON_TYPE.get(type(value), type(value).__name__)}")


def is_mosaic_command_line(argv: list[str]) -> bool:
    """MOSAIC's command line has no subcommand: it starts with a flag."""
    return bool(argv) and argv[0].startswith("-") and argv[0] not in (
        "-h", "--help", "-q", "--quiet", "--version")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m balrog_worker.cli",
        description="MOSAIC's BALROG worker command line (balrog-worker run is ours).")
    parser.add_argument("--version", action="version", version=f"balrog-worker {__version__}")
    parser.add_argument("--config", metavar="PATH", help="a BarlogWorkerConfig JSON file")
    parser.add_argument("--run-id")
    # Checked with the task (an error event, exit 1), not by argparse (exit 2, no event).
    parser.add_argument("--env", dest="env_name", metavar="{" + ",".join(ENV_NAMES) + "}")
    parser.add_argument("--task")
    parser.add_argument("--max-steps", type=int)
    parser.add_argument("--num-episodes", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--render-mode", choices=("rgb_array", "human"))
    parser.add_argument("--client", dest="client_name", choices=CLIENT_NAMES)
    parser.add_argument("--model", dest="model_id")
    parser.add_argument("--api-key")
    parser.add_argument("--base-url")
    parser.add_argument("--temperature", type=float)
    parser.add_argument("--timeout", type=float)
    parser.add_argument("--agent-type", choices=MOSAIC_AGENT_TYPES)
    parser.add_argument("--max-image-history", type=int)
    parser.add_argument("--telemetry-dir")
    parser.add_argument("--no-jsonl", action="store_true")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--interactive", action="store_true")
    return parser


def settings_from(args: argparse.Namespace) -> dict:
    """BarlogWorkerConfig's fields: the defaults, then the --config file (top level, or
    nested under metadata.worker.config as MOSAIC's run configs hold it), then flags."""
    settings = dict(DEFAULTS)
    if args.config:
        try:
            data = documents.load_json(documents.read_text(args.config))
        except FileNotFoundError:
            raise ConfigError(f"--config: {args.config} does not exist") from None
        except documents.DocumentError as error:
            raise ConfigError(f"--config: {args.config} {error}") from None
        nested = (data.get("metadata", {}).get("worker", {}).get("config")
                  if isinstance(data, dict) else None)
        data = nested if isinstance(nested, dict) else data
        if not isinstance(data, dict):
            raise ConfigError(f"--config: {args.config} must hold a JSON object")
        unknown = sorted(set(data) - set(DEFAULTS))
        if unknown:
            raise ConfigError(f"--config: unknown field {unknown[0]!r}; BarlogWorkerConfig "
                              f"has {', '.join(DEFAULTS)}")
        settings.update(data)
    for name in DEFAULTS:
        value = getattr(args, name, None)
        if value is not None:
            settings[name] = value
    if args.no_jsonl:
        settings["emit_jsonl"] = False
    if not settings["run_id"]:
        raise ConfigError("--run-id is required (or run_id in the --config file)")
    _check_types(settings)
    if settings["telemetry_dir"] is None:
        settings["telemetry_dir"] = DEFAULTS["telemetry_dir"]
    if not RUN_ID.match(settings["run_id"]):  # text by now (_check_types)
        raise ConfigError(f"run id {settings['run_id'][:80]!r}: it names files in the "
                          "telemetry dir, so it is letters, digits, '.', '_' and '-' (not "
                          "starting with '.'), at most 128 characters")
    return settings


# A run id names a folder and files inside the telemetry dir: nothing that leaves it.
RUN_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$")


def model_and_agent(settings: dict) -> tuple[ModelSpec, AgentSpec]:
    """The model and agent MOSAIC's settings name (one line naming a bad field otherwise)."""
    client = settings["client_name"]
    if client not in CLIENTS:
        raise ConfigError(f"--client {client!r} is not one of {', '.join(CLIENT_NAMES)}")
    backend, key_variable = CLIENTS[client]
    if settings.get("api_key"):
        # Kept in this process's environment under a private name: the clients read it
        # from there, and it is never part of a config, record or command line of ours.
        os.environ[ARGV_KEY_VARIABLE] = settings["api_key"]
        key_variable = ARGV_KEY_VARIABLE
    base_url = settings.get("base_url") or {"openrouter": OPENROUTER_URL,
                                             "vllm": VLLM_URL}.get(client)
    agent_type = settings["agent_type"]
    if agent_type == "dummy":  # MOSAIC's dummy agent asks no model
        model = ModelSpec(name="random", backend="random")
        agent_type = "naive"
    else:
        model = ModelSpec(
            name=settings["model_id"], backend=backend, model=settings["model_id"],
            base_url=base_url, api_key_env=key_variable, timeout_s=float(settings["timeout"]),
            max_retries=int(settings["max_retries"]),
            generation=Generation(temperature=float(settings["temperature"])))
    agent = AgentSpec(name=agent_type, type=agent_type,
                      max_image_history=int(settings["max_image_history"]))
    return model, agent


def owned_by_gui(settings: dict) -> bool:
    """Whether the GUI owns the game (PettingZoo's boards, MultiGrid games other than
    this project's two): the worker then only chooses actions."""
    if settings["env_name"] not in SELECTOR_ENVS:
        return False
    env, task = envs.canonical(settings["env_name"], settings["task"])
    return not (env == "multigrid" and task in envs.FAMILIES["multigrid"].tasks)


def selector_specs(settings: dict) -> tuple[ModelSpec, AgentSpec]:
    """The model and agent of a worker that only chooses (``owned_by_gui``)."""
    model, agent = model_and_agent(settings)
    if agent.type in ("few_shot", "planner"):
        raise ConfigError(f"--agent-type {agent.type}: its demonstrations and plans are for "
                          f"this project's games; {settings['env_name']} is the GUI's game")
    return model, agent


def cell_config(settings: dict) -> CellConfig:
    """Our cell for MOSAIC's settings (one line naming a bad field otherwise)."""
    # BALROG's, gym's and MOSAIC's names resolve to ours ("nle", "MiniHack-River-v0",
    # "CrafterReward-v1"...); other registered BabyAI, MiniGrid, MiniHack and NetHack ids
    # are played as they are.
    env, task = envs.canonical(settings["env_name"], settings["task"])
    if env not in envs.FAMILIES:
        raise ConfigError(f"env {settings['env_name']!r} is not one of {', '.join(ENV_NAMES)}")
    try:
        envs.check_env_task(env, task)
    except ValueError as error:
        raise ConfigError(f"--task: {error}") from None
    model, agent = model_and_agent(settings)
    multi_agent = envs.FAMILIES[env].multi_agent
    level = mode = None
    if multi_agent:
        level, mode = settings["coordination_level"], settings["observation_mode"]
        if level not in COORDINATION_LEVELS or mode not in OBSERVATION_MODES:
            raise ConfigError(f"coordination_level {level!r} / observation_mode {mode!r}: "
                              f"choose from {COORDINATION_LEVELS} / {OBSERVATION_MODES}")
    role = settings.get("role") if multi_agent and level == 3 else None
    return CellConfig(
        cell=Cell(model.name, agent.name, env, task, level, mode), model=model, agent=agent,
        episodes=int(settings["num_episodes"]), max_steps=int(settings["max_steps"]),
        seed=int(settings["seed"] or 0), role=role)


# MOSAIC's worker exits 1 on any error, a bad config included (its tests check it).
EXIT_ERROR = 1


def main(argv: list[str]) -> int:
    """MOSAIC's command line: run the episodes (batch) or serve commands (--interactive)."""
    from balrog_worker.stopping import (
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        Terminated,
        sigterm_interrupts,
    )

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        stream=sys.stderr)
    out = sys.stdout
    sys.stdout = sys.stderr  # stdout carries events only
    run_id = args.run_id
    try:
        settings = settings_from(args)
        run_id = settings["run_id"]
        if owned_by_gui(settings):
            if not args.interactive:
                raise ConfigError(f"--env {settings['env_name']}: the GUI owns this game and "
                                  "the worker only chooses; run it with --interactive "
                                  "(init_agent, then select_action)")
            config = None
            model, agent = selector_specs(settings)
        else:
            config = cell_config(settings)
            model, agent = config.model, config.agent
        from balrog_worker.clients import preflight

        preflight(model, config.cache if config else "on")
    except ConfigError as error:
        write_event(out, error_event(run_id, str(error)))
        print(f"balrog-worker: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    telemetry = Path(settings["telemetry_dir"])
    try:
        with sigterm_interrupts():
            if args.interactive:
                from balrog_worker.mosaic_interactive import InteractiveSession

                session = InteractiveSession(config, settings, out, model=model, agent=agent)
                return session.run(sys.stdin.buffer)
            return _run_batch(config, settings, out, telemetry)
    except Terminated:
        print(f"balrog-worker: {run_id}: terminated (SIGTERM); {_kept(args, telemetry, run_id)}",
              file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print(f"balrog-worker: {run_id}: interrupted; {_kept(args, telemetry, run_id)}",
              file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_batch(config: CellConfig, settings: dict, out: TextIO, telemetry: Path) -> int:
    from balrog_worker.evaluator import run_cell

    run_id = settings["run_id"]
    cell_dir = telemetry / run_id
    stream = MosaicStream(run_id, settings, out, telemetry if settings["emit_jsonl"] else None,
                          records=cell_dir)
    from balrog_worker.clients.cache import CacheError
    from balrog_worker.clients.vllm_server import ServerError
    from balrog_worker.episode_processes import WorkerDied
    from balrog_worker.store import DiskFull, StoreError

    # MOSAIC gives no core count: the cell takes what its calls in flight keep busy,
    # within the machine's.
    processes = min(config.cores_wanted(), os.cpu_count() or 1)
    try:
        report = run_cell(config, cell_dir, stream=stream, processes=processes)
    except KeyboardInterrupt:
        raise
    except (StoreError, DiskFull, CacheError, ServerError, WorkerDied) as error:  # one line
        write_event(stream.out, error_event(run_id, str(error)))
        print(f"balrog-worker: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as error:  # a defect: MOSAIC reads an error event, and the exit status
        write_event(stream.out, error_event(run_id, f"{type(error).__name__}: {error}"))
        raise
    finally:
        stream.close()
    return 3 if report.failed else 0


def _kept(args, telemetry: Path, run_id: str) -> str:
    if args.interactive:
        return "the interactive session ends (it records nothing)"
    done = len(committed_records(telemetry / run_id)[0])
    return (f"{done} finished episodes are kept in {telemetry / run_id}; the same command "
            "goes on from them")
