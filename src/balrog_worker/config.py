"""Typed configuration: params.yaml (the grid) and the resolved config of one cell.

Input is checked in two passes before any work starts: the JSON schema (shape, types,
ranges, unknown keys) and then cross-references (grid names defined, env/task ids
available, slugs unique). Either failure raises ConfigError with one line that names the
offending field.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import jsonschema
import yaml

from balrog_worker import documents, envs
from balrog_worker.cells import Cell, slugify
from balrog_worker.secrets import looks_like_key, redact, url_has_credentials
from balrog_worker.seeding import episode_seed
from balrog_worker.vocab import (
    AGENT_TYPES,
    ANSWER_PARSING,
    BALROG_WORDING,
    CACHE_MODES,
    COORDINATION_LEVELS,
    DEFAULT_PARALLEL_EPISODES,
    OBSERVATION_MODES,
    OPPONENT_POLICIES,
    PROMPT_WORDING,
    opponent_model,
    roles_of,
)


class ConfigError(ValueError):
    """Bad user input; the message is one line naming what is wrong, and never a key
    (a key pasted into the wrong field is hidden before anyone prints the message)."""

    def __init__(self, message: str):
        message = redact(message)
        if len(message) > MAX_MESSAGE_CHARS:  # a value of 100 kB quoted back is no help
            message = message[:MAX_MESSAGE_CHARS - 3] + "..."
        super().__init__(message)


MAX_MESSAGE_CHARS = 500


@dataclass(frozen=True)
class Generation:
    temperature: float = 1.0
    max_tokens: int = 1024
    top_p: float | None = None


@dataclass(frozen=True)
class Price:
    """US dollars per million tokens (from the ``prices`` table of params.yaml)."""

    input: float
    output: float
    cached_input: float | None = None  # default: the input price

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        cached_rate = self.input if self.cached_input is None else self.cached_input
        fresh = max(input_tokens - cached_input_tokens, 0)
        return (fresh * self.input + cached_input_tokens * cached_rate
                + output_tokens * self.output) / 1e6


@dataclass(frozen=True)
class VLLMServe:
    """A vLLM server the job starts for itself on its own GPUs (backend ``vllm`` without
    ``base_url``), stopped when the cell ends."""

    gpus: int = 1  # the tensor-parallel size, and the GPUs the job asks the scheduler for
    command: tuple[str, ...] = ("vllm",)  # e.g. a container wrapper: apptainer exec ... vllm
    args: tuple[str, ...] = ()  # more `vllm serve` flags: --max-model-len 8192, ...
    startup_timeout_s: float = 1200.0  # weights are loaded (and maybe compiled) first

    def __post_init__(self):
        # Lists from YAML or JSON become tuples: the spec stays hashable and comparable.
        object.__setattr__(self, "command", tuple(self.command))
        object.__setattr__(self, "args", tuple(self.args))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    backend: str
    model: str | None = None
    n_ctx: int = 8192
    threads: int | None = None
    generation: Generation = field(default_factory=Generation)
    # API backends
    base_url: str | None = None
    api_key_env: str | None = None  # the variable holding the key (default per backend)
    timeout_s: float = 60.0
    max_retries: int = 5
    concurrency: int = 8  # calls in flight at once from one job
    constrain_actions: bool = False  # force answers into the valid actions (grammar)
    price: Price | None = None
    serve: VLLMServe | None = None  # vllm: start the server in the job
    # Longest answer kept (default: 16 characters per token of max_tokens, four times
    # what a token holds); a longer one is cut and its step flagged answer_truncated.
    max_answer_chars: int | None = None

    def __post_init__(self):
        # Both are written into every record and summary: no key may ride in them,
        # however the spec was made (params.yaml, MOSAIC's JSON or its command line).
        url = self.base_url or ""
        if looks_like_key(self.model or "") or looks_like_key(url) or url_has_credentials(url):
            raise ConfigError(f"models.{self.name}: its model or base_url holds a key (not "
                              "shown); keys go in the environment (a variable named by "
                              "api_key_env, or MOSAIC's --api-key)")
        if self.serve is None:
            return
        if self.backend != "vllm":
            raise ConfigError(f"models.{self.name}.serve: only the vllm backend starts a "
                              f"server, not {self.backend}")
        if self.base_url:
            raise ConfigError(f"models.{self.name}: give either base_url (a running server) "
                              "or serve (the job starts one), not both")
        if not self.model:
            raise ConfigError(f"models.{self.name}.model: serve needs the model to load")

    def public(self) -> dict:
        """The spec as recorded in summaries: everything but secrets (none held here)."""
        return asdict(self)

    def identity(self) -> dict:
        """What decides the model's answers. Operational settings (timeout, retries,
        concurrency, threads, server address) may change between runs of one cell."""
        identity = {"name": self.name, "backend": self.backend, "model": self.model,
                    "generation": asdict(self.generation),
                    "constrain_actions": self.constrain_actions}
        if self.max_answer_chars is not None:  # cached answers are cut to it
            identity["max_answer_chars"] = self.max_answer_chars
        return identity

    @property
    def answer_limit(self) -> int:
        """Characters of an answer kept."""
        return self.max_answer_chars or 16 * self.generation.max_tokens

    @property
    def body_limit(self) -> int:
        """Bytes of a response body read: 8 times the answer limit (JSON escapes) plus
        1 MiB (usage, reasoning, the envelope)."""
        return 8 * self.answer_limit + (1 << 20)


@dataclass(frozen=True)
class AgentSpec:
    name: str
    type: str
    # BALROG's windows (its config.yaml): observations shown with their text, the
    # current one included; answers replayed with their reasoning; observations shown
    # with their image (0: text only).
    max_text_history: int = 16
    max_cot_history: int = 1
    max_image_history: int = 0
    max_icl_history: int = 1000  # few_shot: demonstration events (observations + actions)
    icl_episodes: int = 1  # few_shot: demonstration episodes, BALROG's eval.icl_episodes
    invalid_feedback: bool = True  # BALROG's eval.feedback_on_invalid_action
    # How an answer is read: BALROG's rule per agent type (strict), or this project's
    # tolerant reading (lenient: case, fences, punctuation, first line). Changes scores.
    answer_parsing: str = "strict"
    # Whose words the model is asked in: this project's (default), or BALROG's own, read
    # from the BALROG tree at balrog_source (balrog_wording.py). Changes scores.
    wording: str = PROMPT_WORDING
    balrog_source: str | None = None

    def __post_init__(self):
        if self.answer_parsing not in ANSWER_PARSING:
            raise ConfigError(f"agent {self.name!r}: answer_parsing {self.answer_parsing!r} "
                              f"is not one of {', '.join(ANSWER_PARSING)}")
        if self.wording not in (PROMPT_WORDING, BALROG_WORDING):
            raise ConfigError(f"agent {self.name!r}: wording {self.wording!r} is not one of "
                              f"{PROMPT_WORDING}, {BALROG_WORDING}")
        if (self.wording == BALROG_WORDING) != (self.balrog_source is not None):
            raise ConfigError(f"agent {self.name!r}: wording: {BALROG_WORDING} and "
                              "balrog_source (a BALROG checkout) go together")

    def balrog_wording(self):
        """BALROG's wording from the tree at balrog_source (None: this project's)."""
        if self.wording != BALROG_WORDING:
            return None
        from balrog_worker.balrog_wording import WordingError, load

        try:
            wording = load(self.balrog_source)
            wording.answer_format(self.type)  # the agent's text is there
        except WordingError as error:
            raise ConfigError(f"agent {self.name!r}: {error}") from None
        return wording


@dataclass(frozen=True)
class EnvSpec:
    name: str
    tasks: tuple[str, ...]
    episodes: int = 1
    max_steps: int | None = None
    opponent: str = "scripted"  # multi-agent games: who plays the other team



# Bounds of the counts, the same as the schemas' (flags and configs are checked alike).
MAX_EPISODES = 100_000
MAX_STEPS = 1_000_000
MAX_PARALLEL = 1024
# Model calls one core keeps in flight at their full rate (bench/concurrency.py: about
# 300 calls/s a core against a 200 ms model on BabyAI), and the most cores a cell asks
# for: a cell spreads its episodes over a worker process a core (episode_processes).
CALLS_PER_CORE = 64
MAX_CELL_CORES = 8

BUILTIN_MODELS = {
    "random": ModelSpec(name="random", backend="random"),
    "scripted": ModelSpec(name="scripted", backend="scripted"),
}


@dataclass(frozen=True)
class CellConfig:
    """Everything one cell's run needs; what summary.json records."""

    cell: Cell
    model: ModelSpec
    agent: AgentSpec
    episodes: int
    max_steps: int | None
    seed: int = 0
    parallel_episodes: int = DEFAULT_PARALLEL_EPISODES
    opponent: str = "scripted"
    cache: str = "on"  # the response cache: on, off, or refresh
    budget_usd: float | None = None  # stop starting episodes once the cell spent this
    role: str | None = None  # multi-agent, level 3: the first focal player's role
    # Soccer with opponent "model:<name>": the model that drives the other team.
    opponent_model: ModelSpec | None = None

    def __post_init__(self):
        if self.cell.env in envs.FAMILIES and envs.FAMILIES[self.cell.env].multi_agent:
            # The cell's identity follows the opponent it is played against.
            object.__setattr__(self, "cell", replace(
                self.cell, opponent=identity_opponent(self.cell.task, self.opponent)))
        _check_count("episodes", self.episodes, 1, MAX_EPISODES)
        if self.max_steps is not None:
            _check_count("max_steps", self.max_steps, 1, MAX_STEPS)
        _check_count("seed", self.seed, 0, None)
        _check_count("parallel_episodes", self.parallel_episodes, 1, MAX_PARALLEL)
        if self.cache not in CACHE_MODES:
            raise ConfigError(f"cache: {self.cache!r} is not one of {', '.join(CACHE_MODES)}")
        if self.budget_usd is not None and not (
                _is_number(self.budget_usd) and math.isfinite(self.budget_usd)
                and self.budget_usd > 0):
            raise ConfigError(f"budget_usd: must be a positive number, got {self.budget_usd!r}")
        for axis in ("model", "agent", "env", "task"):
            try:  # the names make up the results directory's name
                slugify(getattr(self.cell, axis))
            except ValueError:
                raise ConfigError(f"{axis}: {getattr(self.cell, axis)!r} has no ASCII letter "
                                  "or digit to name its results directory with") from None
        multi_agent = envs.FAMILIES[self.cell.env].multi_agent
        axes = (self.cell.coordination_level, self.cell.observation_mode)
        if multi_agent and None in axes:
            raise ConfigError(f"{self.cell.env} is multi-agent: it needs a coordination level "
                              "(1, 2, 3) and an observation mode (egocentric, visible_teammates)")
        if not multi_agent and axes != (None, None):
            raise ConfigError(f"coordination levels and observation modes apply to "
                              f"multi-agent envs only, not {self.cell.env!r}")
        if self.role is not None:
            if not multi_agent or self.cell.coordination_level != 3:
                raise ConfigError("a role applies to multi-agent envs at coordination level 3")
            if self.role not in roles_of(self.cell.task):
                raise ConfigError(f"role {self.role!r} is not a role of {self.cell.task} "
                                  f"({', '.join(roles_of(self.cell.task))})")
        named = opponent_model(self.opponent)
        if self.opponent not in OPPONENT_POLICIES and named is None:
            raise ConfigError(f"unknown opponent {self.opponent!r}; choose from "
                              f"{', '.join(OPPONENT_POLICIES)} or model:<name>")
        if named is not None:
            if self.cell.task != "soccer":
                raise ConfigError(f"opponent {self.opponent!r}: only Soccer has another team")
            if self.opponent_model is None or self.opponent_model.name != named:
                raise ConfigError(f"opponent {self.opponent!r}: model {named!r} is not "
                                  "resolved (define it under models:)")
            if self.opponent_model.backend == "scripted":
                raise ConfigError(f"opponent {self.opponent!r}: use opponent: scripted")
        if self.agent.wording == BALROG_WORDING:
            from balrog_worker.balrog_wording import ENV_PACKAGES

            if self.cell.env not in ENV_PACKAGES:
                raise ConfigError(f"agent {self.agent.name!r}: wording: balrog reads the "
                                  f"instructions of {', '.join(ENV_PACKAGES)}, not "
                                  f"{self.cell.env!r}")
            self.agent.balrog_wording()  # the tree is there, with the agent's text
        if self.agent.type == "few_shot" and not _demonstrable(self.cell.env):
            raise ConfigError(
                f"agent {self.agent.name!r}: few_shot needs demonstrations, which come from "
                f"the scripted expert on seeds the cell never plays; env {self.cell.env!r} "
                "has none (BALROG's recorded demonstrations are not available offline)")
        family = envs.FAMILIES[self.cell.env]
        if self.agent.type == "few_shot" and family.fixed_games:
            games = {family.game_of(episode_seed(self.seed, self.cell.env, self.cell.task, i))
                     for i in range(self.episodes)}
            if len(games) + self.agent.icl_episodes > family.fixed_games:
                raise ConfigError(
                    f"agent {self.agent.name!r}: few_shot shows games the cell does not play; "
                    f"{self.episodes} episodes of {self.cell.env}/{self.cell.task} play "
                    f"{len(games)} of its {family.fixed_games} games, too many to leave "
                    f"{self.agent.icl_episodes} for demonstrations")
        if self.model.backend == "scripted" and not family.oracle:
            with_oracle = [name for name, family in envs.FAMILIES.items() if family.oracle]
            raise ConfigError(
                f"model {self.model.name!r}: env {self.cell.env!r} has no scripted oracle "
                f"(the scripted baseline plays {', '.join(with_oracle)})"
            )

    @property
    def run_id(self) -> str:
        return self.cell.slug

    def game_options(self) -> dict:
        """The options the game of this cell is opened with (envs.open_game)."""
        family = envs.FAMILIES[self.cell.env]
        if family.vision_text:
            return {"vision": self.agent.max_image_history > 0}
        if not family.multi_agent:
            return {}
        return {"coordination_level": self.cell.coordination_level,
                "observation_mode": self.cell.observation_mode, "opponent": self.opponent,
                "role": self.role}

    def calls_in_flight(self, backend: str | None = None) -> int:
        """The model calls this cell keeps in flight at most (at ``backend``'s servers
        only, if given): episodes played at once, times the players each model drives,
        within each model's own concurrency."""
        players = envs.FAMILIES[self.cell.env].players(self.cell.task)
        episodes = min(self.parallel_episodes, self.episodes)
        models = [self.model, *([self.opponent_model] if self.opponent_model else [])]
        return sum(min(model.concurrency, players * episodes) for model in models
                   if backend is None or model.backend == backend)

    def cores_wanted(self) -> int:
        """The cores this cell uses well (``run --processes``): one per CALLS_PER_CORE
        calls in flight, at most MAX_CELL_CORES; one for a model that exists once (the
        embedded one, whose own threads are its cores, or a vLLM server it starts)."""
        models = [self.model, *([self.opponent_model] if self.opponent_model else [])]
        if any(model.backend == "local" or model.serve for model in models):
            return 1
        return max(1, min(-(-self.calls_in_flight() // CALLS_PER_CORE), MAX_CELL_CORES))

    def public(self) -> dict:
        """The resolved config as JSON data (no secrets): ``cell_config_from_dict`` reads
        it back, so a cell can be rerun from its own record."""
        return {
            "run_id": self.run_id,
            "cell": self.cell.keys(),
            "model": self.model.public(),
            "agent": asdict(self.agent),
            "episodes": self.episodes,
            "max_steps": self.max_steps,
            "seed": self.seed,
            "parallel_episodes": self.parallel_episodes,
            "opponent": self.opponent,
            "opponent_model": self.opponent_model.public() if self.opponent_model else None,
            "cache": self.cache,
            "budget_usd": self.budget_usd,
            "role": self.role,
        }

    def trajectory_keys(self) -> dict:
        """The settings that decide what an episode plays; records made under other
        settings must not be mixed with these (episode count and concurrency may vary)."""
        public = self.public()
        keys = ("run_id", "cell", "agent", "max_steps", "seed", "opponent", "role")
        rival = self.opponent_model.identity() if self.opponent_model else None
        return {"model": self.model.identity(), "opponent_model": rival,
                **{k: public[k] for k in keys}}


@dataclass(frozen=True)
class GridBlock:
    """One cross product of the grid (params may list several, e.g. a baseline that
    only plays some environments)."""

    models: tuple[str, ...]
    agents: tuple[str, ...]
    envs: tuple[str, ...]
    coordination_levels: tuple[int, ...] = COORDINATION_LEVELS
    observation_modes: tuple[str, ...] = OBSERVATION_MODES


@dataclass(frozen=True)
class Params:
    seed: int
    parallel_episodes: int
    cache: str
    budget_usd: float | None
    results_dir: str
    reports_dir: str
    models: dict[str, ModelSpec]
    agents: dict[str, AgentSpec]
    envs: dict[str, EnvSpec]
    grid: tuple[GridBlock, ...]

    def cells(self) -> list[Cell]:
        """The grid: for each block, models x agents x (env, task), and for multi-agent
        envs also x coordination levels x observation modes; stable order, no repeats."""
        cells = (
            Cell(model=m, agent=a, env=e, task=t, coordination_level=level,
                 observation_mode=mode,
                 opponent=(identity_opponent(t, self.envs[e].opponent)
                           if envs.FAMILIES[e].multi_agent else None))
            for block in self.grid
            for m in block.models
            for a in block.agents
            for e in block.envs
            for t in self.envs[e].tasks
            for level, mode in _multi_agent_axes(e, block)
        )
        return list(dict.fromkeys(cells))

    def model(self, name: str) -> ModelSpec:
        if name in self.models:
            return self.models[name]
        if name in BUILTIN_MODELS:
            return BUILTIN_MODELS[name]
        known = sorted({*self.models, *BUILTIN_MODELS})
        raise ConfigError(f"unknown model {name!r}; defined: {', '.join(known)}")

    def agent(self, name: str) -> AgentSpec:
        if name in self.agents:
            return self.agents[name]
        return _agent_spec(name, {}, field_path=f"agent {name!r}")

    def cell_config(self, cell: Cell, **overrides) -> CellConfig:
        """The resolved config of ``cell``; ``overrides`` (episodes, max_steps, seed,
        parallel_episodes) win over params when not None."""
        env = self.envs.get(cell.env)
        config = CellConfig(
            cell=cell,
            model=self.model(cell.model),
            agent=self.agent(cell.agent),
            episodes=env.episodes if env else 1,
            max_steps=(env and env.max_steps) or envs.FAMILIES[cell.env].max_steps,
            opponent=env.opponent if env else "scripted",
            opponent_model=(self.model(opponent_model(env.opponent))
                            if env and opponent_model(env.opponent) else None),
            seed=self.seed,
            parallel_episodes=self.parallel_episodes,
            cache=self.cache,
            budget_usd=self.budget_usd,
        )
        return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def identity_opponent(task: str, opponent: str) -> str | None:
    """The opponent as part of a cell's identity: Soccer's other team unless it is the
    default scripted one (so that the cells of earlier grids keep their names)."""
    return opponent if task == "soccer" and opponent != "scripted" else None


def _demonstrable(env: str) -> bool:
    family = envs.FAMILIES[env]
    return family.oracle and not family.multi_agent


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: object) -> bool:
    """An int, not a bool, and not a float such as 2.0 (JSON Schema's "integer" admits
    those, and a count of 2.0 episodes breaks later, far from the input)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _check_count(name: str, value: object, low: int, high: int | None) -> None:
    if not _is_integer(value) or value < low or (high is not None and value > high):
        bounds = f"from {low} to {high}" if high is not None else f"of {low} or more"
        raise ConfigError(f"{name}: must be an integer {bounds}, got {value!r}")


def _multi_agent_axes(env: str, block: GridBlock) -> list[tuple[int | None, str | None]]:
    if not envs.FAMILIES[env].multi_agent:
        return [(None, None)]
    return [(level, mode) for level in block.coordination_levels
            for mode in block.observation_modes]


@functools.cache
def params_schema() -> dict:
    text = importlib.resources.files("balrog_worker.schemas").joinpath("params.schema.yaml")
    return yaml.safe_load(text.read_text())


def load_params(path: str | Path, check_cells: bool = True) -> Params:
    """Read and validate a params file; see params_from_dict for ``check_cells``."""
    path = Path(path)
    try:
        data = documents.load_yaml(documents.read_text(path))
    except FileNotFoundError:
        raise ConfigError(f"params file not found: {path}") from None
    except documents.DocumentError as error:
        raise ConfigError(f"{path}: {error}") from None
    return params_from_dict(data, source=str(path), check_cells=check_cells)


def params_from_dict(data: object, source: str = "params", check_cells: bool = True) -> Params:
    """Validate ``data`` (parsed params.yaml) and build Params, or raise ConfigError.

    With ``check_cells`` every cell of the grid is resolved once, so that a combination
    the grid cannot run (few_shot on an env without demonstrations, say) is refused before
    any work starts. `run` of a single cell skips it (its own cell is checked as it is
    resolved): a grid of a million cells takes seconds to expand, in every cluster job."""
    check_schema(data, params_schema(), source)
    prices = {model: Price(**price) for model, price in data.get("prices", {}).items()}
    models = {name: _model_spec(name, spec, prices) for name, spec in data["models"].items()}
    agents = {
        name: _agent_spec(name, spec, field_path=f"agents.{name}")
        for name, spec in data["agents"].items()
    }
    env_specs = {}
    for name, spec in data["envs"].items():
        env_spec = _env_spec(name, spec, source)
        if env_spec.name in env_specs:
            raise ConfigError(f"{source}: envs: {name!r} names {env_spec.name!r} again")
        env_specs[env_spec.name] = env_spec
    blocks = data["grid"] if isinstance(data["grid"], list) else [data["grid"]]
    # Grid blocks may name envs as BALROG does ("nle").
    blocks = [{**block, "envs": [envs.canonical(name)[0] for name in block["envs"]]}
              for block in blocks]
    for number, block in enumerate(blocks):
        where = f"grid.{number}" if isinstance(data["grid"], list) else "grid"
        for axis, defined in (("models", models), ("agents", agents), ("envs", env_specs)):
            for name in block[axis]:
                if name not in defined and not (axis == "models" and name in BUILTIN_MODELS):
                    raise ConfigError(
                        f"{source}: {where}.{axis}: {name!r} is not defined under {axis}: "
                        f"(defined: {', '.join(defined)})"
                    )
    _check_grid_size(blocks, env_specs, source)
    paths = data.get("paths", {})
    evaluation = data.get("evaluation", {})
    params = Params(
        seed=data.get("seed", 0),
        parallel_episodes=evaluation.get("parallel_episodes", DEFAULT_PARALLEL_EPISODES),
        cache=_cache_mode(evaluation.get("cache", "on")),
        budget_usd=evaluation.get("budget_usd"),
        results_dir=paths.get("results", "results/runs"),
        reports_dir=paths.get("reports", "reports"),
        models=models,
        agents=agents,
        envs=env_specs,
        grid=tuple(GridBlock(tuple(b["models"]), tuple(b["agents"]), tuple(b["envs"]),
                             tuple(b.get("coordination_levels", COORDINATION_LEVELS)),
                             tuple(b.get("observation_modes", OBSERVATION_MODES)))
                   for b in blocks),
    )
    _check_unique_slugs(params, source)
    for cell in params.cells() if check_cells else ():
        try:
            params.cell_config(cell)
        except ConfigError as error:
            raise ConfigError(f"{source}: grid: {error}") from None
    return params


# Cells a params file may define: 40,320 jobs already take Snakemake 31 s to plan.
MAX_CELLS = 1_000_000


def _check_grid_size(blocks: list[dict], env_specs: dict, source: str) -> None:
    """Refuse a grid of more than MAX_CELLS cells, counted before it is expanded."""
    total = 0
    for block in blocks:
        per_agent = 0
        for env in block["envs"]:
            axes = (len(block.get("coordination_levels", COORDINATION_LEVELS))
                    * len(block.get("observation_modes", OBSERVATION_MODES))
                    if envs.FAMILIES[env].multi_agent else 1)
            per_agent += len(env_specs[env].tasks) * axes
        total += len(block["models"]) * len(block["agents"]) * per_agent
        if total > MAX_CELLS:
            raise ConfigError(f"{source}: grid: more than {MAX_CELLS:,} cells; split it into "
                              "several params files")


def cell_config_from_dict(data: object, source: str = "cell config") -> CellConfig:
    """Read a resolved cell config (``CellConfig.public()``), or raise ConfigError."""
    check_schema(data, CELL_SCHEMA, source)
    defs = params_schema()["$defs"]
    parts = {}
    for key in ("model", "agent"):
        part = _without_nulls(data[key])
        name = part.pop("name")
        check_schema(part, {"$defs": defs, "$ref": f"#/$defs/{key}"}, f"{source}: {key}")
        parts[key] = (name, part)
    cell = Cell(**data["cell"])
    env, task = envs.canonical(cell.env, cell.task)
    cell = replace(cell, env=env, task=task)
    try:
        envs.check_env_task(cell.env, cell.task)
    except ValueError as error:
        raise ConfigError(f"{source}: cell: {error}") from None
    rival = None
    if data.get("opponent_model"):
        part = _without_nulls(data["opponent_model"])
        name = part.pop("name")
        check_schema(part, {"$defs": defs, "$ref": "#/$defs/model"},
                     f"{source}: opponent_model")
        rival = _model_spec(name, part)
    config = CellConfig(
        cell=cell,
        model=_model_spec(*parts["model"]),
        agent=_agent_spec(*parts["agent"], field_path=f"{source}: agent"),
        episodes=data["episodes"],
        max_steps=data.get("max_steps"),
        seed=data.get("seed", 0),
        parallel_episodes=data.get("parallel_episodes", DEFAULT_PARALLEL_EPISODES),
        opponent=data.get("opponent", "scripted"),
        cache=data.get("cache", "on"),
        budget_usd=data.get("budget_usd"),
        role=data.get("role"),
        opponent_model=rival,
    )
    if "run_id" in data and data["run_id"] != config.run_id:
        raise ConfigError(f"{source}: run_id {data['run_id']!r} does not match its cell "
                          f"({config.run_id!r})")
    return config


def _cache_mode(value: str | bool) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return value


def _without_nulls(mapping: dict) -> dict:
    return {k: (_without_nulls(v) if isinstance(v, dict) else v)
            for k, v in mapping.items() if v is not None}


_NAMED = {"type": "object", "required": ["name"], "properties": {"name": {"type": "string"}}}
CELL_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["cell", "model", "agent", "episodes"],
    "properties": {
        "run_id": {"type": "string"},
        "cell": {
            "type": "object",
            "additionalProperties": False,
            "required": ["model", "agent", "env", "task"],
            "properties": {
                "model": {"type": "string", "minLength": 1},
                "agent": {"type": "string", "minLength": 1},
                "env": {"type": "string"},
                "task": {"type": "string"},
                "coordination_level": {"enum": [None, 1, 2, 3]},
                "observation_mode": {"enum": [None, "egocentric", "visible_teammates"]},
                "opponent": {"type": ["string", "null"]},
            },
        },
        "model": _NAMED,
        "agent": _NAMED,
        "episodes": {"type": "integer", "minimum": 1, "maximum": MAX_EPISODES},
        "max_steps": {"type": ["integer", "null"], "minimum": 1, "maximum": MAX_STEPS},
        "seed": {"type": "integer", "minimum": 0},
        "parallel_episodes": {"type": "integer", "minimum": 1, "maximum": MAX_PARALLEL},
        "opponent": {"type": "string", "pattern": "^(scripted|random|model:.+)$"},
        "opponent_model": {"oneOf": [{"type": "null"}, _NAMED]},
        "cache": {"enum": list(CACHE_MODES)},
        "budget_usd": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "role": {"enum": [None, "forward", "defender", "west", "centre", "east"]},
    },
}


def _strict_integer(checker, instance: object) -> bool:
    return _is_integer(instance)


def _finite_number(checker, instance: object) -> bool:
    """A number other than NaN and the infinities (which YAML and Python's json read)."""
    return _is_number(instance) and math.isfinite(instance)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine_many(
        {"integer": _strict_integer, "number": _finite_number}),
)


def check_schema(data: object, schema: dict, source: str) -> None:
    validator = _Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is None:
        return
    # "not valid under any of the given schemas" helps nobody: report the failure of the
    # alternative that fits the value's type (e.g. the mapping form of the grid).
    while error.validator in ("oneOf", "anyOf") and error.context:
        fitting = [e for e in error.context if e.validator != "type" or e.relative_path]
        if not fitting:
            break
        error = jsonschema.exceptions.best_match(fitting)
    where = ".".join(str(part) for part in error.absolute_path) or "top level"
    raise ConfigError(f"{source}: {where}: {_plain_message(error)}")


def _plain_message(error: jsonschema.ValidationError) -> str:
    if error.validator == "additionalProperties":
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})),
                         key=str)  # YAML keys may be numbers or dates too
        allowed = ", ".join(error.schema.get("properties", {})) or "none"
        return f"unknown key {', '.join(map(repr, unknown))} (allowed: {allowed})"
    if error.validator == "required":
        return error.message.replace("is a required property", "is required")
    if error.validator == "pattern" and "description" in error.schema:
        # Values of fields that hold URLs or variable names are not repeated: a key is
        # what gets pasted there by mistake.
        shown = ("the value" if error.schema.get("x-hide-value") or looks_like_key(
            str(error.instance)) else repr(error.instance))
        what = error.schema.get("title", "name")
        return f"{shown} is not a valid {what}: {' '.join(error.schema['description'].split())}"
    if looks_like_key(str(error.instance)):
        return "the value is not valid here (not shown: it looks like a key)"
    return error.message.splitlines()[0]


def _model_spec(name: str, spec: dict, prices: dict[str, Price] | None = None) -> ModelSpec:
    generation = Generation(**spec.get("generation", {}))
    price = spec.get("price")
    if isinstance(price, dict):
        price = Price(**price)
    elif prices:  # the prices table is keyed by model id, or by the entry's name
        price = prices.get(spec.get("model") or "") or prices.get(name)
    serve = spec.get("serve")
    if isinstance(serve, dict):
        serve = VLLMServe(**serve)
    fields = {k: v for k, v in spec.items() if k not in ("generation", "price", "serve")}
    return ModelSpec(name=name, generation=generation, price=price, serve=serve, **fields)


def _agent_spec(name: str, spec: dict, field_path: str) -> AgentSpec:
    agent_type = spec.get("type", name)
    if agent_type not in AGENT_TYPES:
        raise ConfigError(f"{field_path}: unknown agent type {agent_type!r}; available: "
                          f"{', '.join(AGENT_TYPES)}")
    return AgentSpec(name=name, **{"type": agent_type, **spec})


def _env_spec(name: str, spec: dict, source: str) -> EnvSpec:
    family = envs.canonical(name)[0]
    if "opponent" in spec and family in envs.FAMILIES and not envs.FAMILIES[family].multi_agent:
        raise ConfigError(f"{source}: envs.{name}: 'opponent' applies to multi-agent envs only")
    tasks = []
    for task in spec["tasks"]:
        _, task = envs.canonical(family, task)  # BALROG's task names are accepted too
        try:
            envs.check_env_task(family, task)
        except ValueError as error:
            raise ConfigError(f"{source}: envs.{name}: {error}") from None
        tasks.append(task)
    return EnvSpec(name=family, tasks=tuple(dict.fromkeys(tasks)),
                   **{k: v for k, v in spec.items() if k != "tasks"})


def _check_unique_slugs(params: Params, source: str) -> None:
    for axis in ("models", "agents"):
        seen: dict[str, str] = {}
        names = dict.fromkeys(n for block in params.grid for n in getattr(block, axis))
        for name in names:
            slug = slugify(name)
            if slug in seen:
                raise ConfigError(
                    f"{source}: grid.{axis}: {seen[slug]!r} and {name!r} map to the same "
                    f"directory name {slug!r}; rename one"
                )
            seen[slug] = name
