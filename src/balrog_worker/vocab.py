"""Every vocabulary and default of the project, defined once.

Config, the CLI, the schemas' cross-checks, the games and the workflow all read these
names from here; this module imports nothing of the project, so any layer may use it.
"""

from __future__ import annotations

# Agents, by type (their classes are registered in balrog_worker.agents).
AGENT_TYPES = ("naive", "robust_naive", "cot", "robust_cot", "few_shot", "planner")
# How answers are read: BALROG's rule per agent type, or this project's tolerant reading.
ANSWER_PARSING = ("strict", "lenient")
# Model backends (their clients are made in balrog_worker.clients).
BACKENDS = ("random", "scripted", "local", "openai", "vllm", "openai_compatible", "anthropic",
            "gemini")
BASELINES = ("random", "scripted")  # backends that are policies, not models

# BALROG's six environments: its overall score is their unweighted mean, and its
# leaderboard figure holds them alone.
BALROG_ENVS = ("babyai", "babaisai", "textworld", "crafter", "minihack", "nethack")

# Whose words the model is asked in (instructions, answer format): this project's own,
# which carry BALROG's information in other words. Every episode record names it, and
# the leaderboard marks rows not asked in BALROG's wording (scores depend on wording).
PROMPT_WORDING = "balrog-worker"
BALROG_WORDING = "balrog"

# The multi-agent axes (MOSAIC).
COORDINATION_LEVELS = (1, 2, 3)
OBSERVATION_MODES = ("egocentric", "visible_teammates")
# Who plays Soccer's other team: a fixed policy, or a model ("model:<name>").
OPPONENT_POLICIES = ("scripted", "random")
MODEL_OPPONENT_PREFIX = "model:"
# Level-3 roles per game, in the order players receive them.
ROLES = {"soccer": ("forward", "defender"), "collect": ("west", "centre", "east")}

CACHE_MODES = ("on", "off", "refresh")

# Defaults.
DEFAULT_PARALLEL_EPISODES = 4  # episodes of one cell in flight at once
DEFAULT_SEED = 0


def roles_of(game: str) -> tuple[str, ...]:
    """The level-3 roles of a multi-agent game."""
    return ROLES[game]


def opponent_model(opponent: str) -> str | None:
    """The model named by an opponent ``model:<name>``, or None for a fixed policy."""
    if opponent.startswith(MODEL_OPPONENT_PREFIX):
        return opponent.removeprefix(MODEL_OPPONENT_PREFIX)
    return None
