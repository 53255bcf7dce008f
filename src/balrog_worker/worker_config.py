"""The MOSAIC worker's cell config: the JSON a MOSAIC GUI or daemon hands a worker.

    {"worker": "balrog", "model": "gpt-4o-mini", "backend": "openai",
     "environment": "babyai/goto", "num_episodes": 5, "max_steps": 64,
     "history_window": 16, "parallel_workers": 4,
     "coordination_level": 3, "observation_mode": "visible_teammates", "role": "defender"}

``environment`` is an ``env/task`` id, a MOSAIC alias (``MultiGrid-Soccer-v0``), or an
env family with ``task`` given apart. Optional keys: ``task``, ``agent`` (default naive),
``seed``, ``base_url``, ``temperature``, ``max_tokens``, ``opponent``. ``model`` names the
model id for the backend (for ``local``: an embedded model name or a .gguf path).
"""

from __future__ import annotations

from balrog_worker import envs
from balrog_worker.cells import Cell
from balrog_worker.config import (
    AgentSpec,
    CellConfig,
    ConfigError,
    Generation,
    ModelSpec,
    check_schema,
)
from balrog_worker.vocab import (
    COORDINATION_LEVELS,
    DEFAULT_PARALLEL_EPISODES,
    OBSERVATION_MODES,
    OPPONENT_POLICIES,
    ROLES,
)

MOSAIC_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["model", "backend", "environment"],
    "properties": {
        "worker": {"type": "string"},
        "model": {"type": "string", "minLength": 1},
        "backend": {"enum": ["random", "scripted", "local", "openai", "vllm",
                             "openai_compatible", "anthropic", "gemini"]},
        "environment": {"type": "string", "minLength": 1},
        "task": {"type": "string", "minLength": 1},
        "agent": {"enum": ["naive", "robust_naive", "cot", "robust_cot", "few_shot",
                           "planner"]},
        "num_episodes": {"type": "integer", "minimum": 1, "maximum": 100000},
        "max_steps": {"type": "integer", "minimum": 1, "maximum": 1000000},
        "history_window": {"type": "integer", "minimum": 0, "maximum": 1000},
        "parallel_workers": {"type": "integer", "minimum": 1, "maximum": 1024},
        "seed": {"type": "integer", "minimum": 0},
        "base_url": {"type": "string", "pattern": "^https?://[^/@]*(/|$)", "title": "base_url",
                     "description": "an http(s) URL without user:key@ credentials",
                     "x-hide-value": True},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer", "minimum": 1},
        "coordination_level": {"enum": list(COORDINATION_LEVELS)},
        "observation_mode": {"enum": list(OBSERVATION_MODES)},
        "role": {"enum": sorted({role for roles in ROLES.values() for role in roles})},
        "opponent": {"enum": list(OPPONENT_POLICIES)},
    },
}


def is_mosaic_config(data: object) -> bool:
    return isinstance(data, dict) and "environment" in data and "cell" not in data


def mosaic_cell_config(data: dict, source: str = "cell config") -> CellConfig:
    """A CellConfig from MOSAIC's JSON shape, or ConfigError naming the bad field."""
    check_schema(data, MOSAIC_SCHEMA, source)
    env, _, task = data["environment"].partition("/")
    env, task = envs.resolve_alias(env, task or data.get("task"))
    if not task:
        raise ConfigError(f"{source}: environment {data['environment']!r} needs a task "
                          "(give env/task, or a task key)")
    try:
        envs.check_env_task(env, task)
    except ValueError as error:
        raise ConfigError(f"{source}: environment: {error}") from None
    multi_agent = envs.FAMILIES[env].multi_agent
    level = data.get("coordination_level", 1 if multi_agent else None)
    mode = data.get("observation_mode", "egocentric" if multi_agent else None)
    generation = Generation(**{k: data[k] for k in ("temperature", "max_tokens") if k in data})
    parallel = data.get("parallel_workers", DEFAULT_PARALLEL_EPISODES)
    players = envs.FAMILIES[env].players(task)
    # parallel_workers episodes at once: the model keeps all their calls in flight (its
    # default concurrency would otherwise cap them).
    model = ModelSpec(name=data["model"], backend=data["backend"],
                      model=None if data["backend"] in ("random", "scripted") else data["model"],
                      base_url=data.get("base_url"), generation=generation,
                      concurrency=max(ModelSpec.concurrency, parallel * players))
    agent_type = data.get("agent", "naive")
    agent = AgentSpec(agent_type, agent_type, max_text_history=data.get("history_window", 16))
    return CellConfig(
        cell=Cell(model=data["model"], agent=agent_type, env=env, task=task,
                  coordination_level=level, observation_mode=mode),
        model=model, agent=agent, episodes=data.get("num_episodes", 1),
        max_steps=data.get("max_steps") or envs.FAMILIES[env].max_steps,
        seed=data.get("seed", 0),
        parallel_episodes=parallel,
        opponent=data.get("opponent", "scripted"), role=data.get("role"),
    )
