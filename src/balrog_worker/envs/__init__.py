"""Registry of game families and their tasks.

Task lists are plain data so that listing and validating ids imports no simulator; a
family's module is imported only when one of its games is made. A task may be known but
unavailable here: it is not listed, and asking for it says why.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from balrog_worker.envs.base import Game, Observation, PlayerGame, SoloGame, StepOutcome, Turn

# BabaIsAI's 40 tasks, in BALROG's order (its config.yaml writes them "env/<task>"); plain
# data, so that listing ids imports no game (envs/babaisai/levels.py defines each level).
BABAISAI_TASKS = (
    "make_win-distr_obj_rule", "goto_win-distr_obj_rule", "goto_win", "goto_win-distr_obj",
    "goto_win-distr_rule", "goto_win-distr_obj-irrelevant_rule", "make_win-distr_obj",
    "make_win-distr_rule", "make_win", "make_win-distr_obj-irrelevant_rule",
    "two_room-goto_win", "two_room-goto_win-distr_obj_rule", "two_room-goto_win-distr_rule",
    "two_room-goto_win-distr_obj", "two_room-goto_win-distr_obj-irrelevant_rule",
    "two_room-goto_win-distr_win_rule", "two_room-break_stop-goto_win-distr_obj_rule",
    "two_room-break_stop-goto_win-distr_obj", "two_room-break_stop-goto_win-distr_rule",
    "two_room-break_stop-goto_win-distr_obj-irrelevant_rule", "two_room-break_stop-goto_win",
    "two_room-maybe_break_stop-goto_win-distr_obj_rule", "two_room-maybe_break_stop-goto_win",
    "two_room-maybe_break_stop-goto_win-distr_obj",
    "two_room-maybe_break_stop-goto_win-distr_rule",
    "two_room-maybe_break_stop-goto_win-distr_obj-irrelevant_rule",
    "two_room-make_win-distr_obj_rule", "two_room-make_win-distr_rule", "two_room-make_win",
    "two_room-make_win-distr_obj-irrelevant_rule", "two_room-make_win-distr_obj",
    "two_room-make_win-distr_win_rule", "two_room-break_stop-make_win-distr_obj_rule",
    "two_room-break_stop-make_win-distr_rule", "two_room-break_stop-make_win",
    "two_room-break_stop-make_win-distr_obj-irrelevant_rule",
    "two_room-break_stop-make_win-distr_obj", "two_room-make_you",
    "two_room-make_you-make_win", "two_room-make_wall_win",
)

# BALROG's TextWorld tasks are 25 pre-generated games each (envs/data, bundled.py).
TEXTWORLD_GAMES = 25

__all__ = ["FAMILIES", "Family", "Game", "Observation", "PlayerGame", "StepOutcome", "Turn",
           "check_env_task", "env_ids", "make", "open_game"]


def _import(module_name: str):
    with warnings.catch_warnings():
        # pygame (pulled in by minigrid) and minihack warn about pkg_resources on import.
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
        return importlib.import_module(module_name)


@dataclass(frozen=True)
class Family:
    name: str
    tasks: tuple[str, ...]
    factory: str  # "module:class": a Game (one player) or a PlayerGame (multi_agent)
    max_steps: int | None = None  # BALROG's step cap; None: the game's own limit
    oracle: bool = False  # the scripted baseline can play it
    multi_agent: bool = False  # several players: crossed with coordination levels and modes
    players: Callable[[str], int] = lambda task: 1  # the players a model drives, per task
    unavailable: Callable[[str], str | None] = lambda task: None  # why a task can't run
    # Tasks beyond the listed ones the family also plays (registered gym ids, as MOSAIC
    # passes them): not listed by `envs`, accepted wherever a task is.
    also_plays: Callable[[str], bool] = lambda task: False
    # BALROG shows vision agents other text (NetHack's "language" mode): its games take
    # ``vision`` (whether images are sent) as an option.
    vision_text: bool = False
    # Games per task where a task is a fixed set (BALROG's TextWorld: seed S plays game
    # S % 25); None where every seed makes its own game.
    fixed_games: int | None = None

    def game_of(self, seed: int) -> int:
        """Which game of a task the episode seed ``seed`` plays."""
        return seed % self.fixed_games if self.fixed_games else seed

    def task_ids(self) -> tuple[str, ...]:
        """The tasks that can run here."""
        return tuple(task for task in self.tasks if self.unavailable(task) is None)

    def load(self) -> type[Game] | type[PlayerGame]:
        """The family's game class: a one-player ``Game``, or a ``PlayerGame`` for
        multi-agent families (their options, such as the observation mode, are its
        keyword arguments)."""
        module_name, attr = self.factory.split(":")
        return getattr(_import(module_name), attr)


def _registered(prefixes: tuple[str, ...], registering_module: str) -> Callable[[str], bool]:
    """A predicate: is ``task`` a gym id with one of ``prefixes``, registered once
    ``registering_module`` is imported (imported only for ids that could match)?"""

    def plays(task: str) -> bool:
        if not task.startswith(prefixes):
            return False
        import gymnasium

        _import(registering_module)
        return task in gymnasium.registry

    return plays


def _minihack_id(task: str) -> bool:
    """Is ``task`` a MiniHack id minihack registers (with gym, as BALROG's NLE fork)?"""
    return task.startswith("MiniHack-") and _import("balrog_worker.envs.minihack").registered(
        task)


def _minigrid_unavailable(task: str) -> str | None:
    """Why a registered MiniGrid id cannot run here: minigrid's wave-function-collapse
    levels read pattern images that its wheel does not ship."""
    if not task.startswith("MiniGrid-WFC-"):
        return None
    from importlib.util import find_spec

    spec = find_spec("minigrid")
    patterns = Path(spec.origin).parent / "envs" / "wfc" / "patterns" if spec else None
    if patterns is None or not patterns.is_dir():
        return (f"{task}: minigrid's wave-function-collapse levels need pattern images its "
                "installed package does not ship (minigrid/envs/wfc/patterns)")
    return None


def _nle_id(task: str) -> bool:
    """Is ``task`` one of NLE's NetHack ids (BALROG's NLE fork registers them with gym)?"""
    return task.startswith("NetHack") and _import("balrog_worker.envs.nethack").registered(task)


FAMILIES: dict[str, Family] = {
    family.name: family
    for family in (
        Family("babyai", ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to"),
               "balrog_worker.envs.babyai:BabyAIGame", oracle=True,
               also_plays=_registered(("BabyAI-",), "minigrid")),
        Family("minihack", ("boxoban_hard", "boxoban_medium", "mazewalk_9x9",
                            "mazewalk_15x15", "corridor_r3", "corridorbattle_dark",
                            "quest_easy", "quest_medium", "river"),
               "balrog_worker.envs.minihack:MiniHackGame", max_steps=100, vision_text=True,
               also_plays=_minihack_id),
        Family("nethack", ("challenge",), "balrog_worker.envs.nethack:NetHackGame",
               max_steps=100_000, vision_text=True, also_plays=_nle_id),
        Family("crafter", ("default",), "balrog_worker.envs.crafter:CrafterGame",
               max_steps=2000),
        Family("babaisai", BABAISAI_TASKS, "balrog_worker.envs.babaisai:BabaIsAIGame",
               max_steps=100, oracle=True),
        Family("textworld", ("treasure_hunter", "the_cooking_game", "coin_collector"),
               "balrog_worker.envs.textworld:TextWorldGame", max_steps=80, oracle=True,
               fixed_games=TEXTWORLD_GAMES),
        Family("multigrid", ("soccer", "collect"), "balrog_worker.multigrid.game:MultiGridGame",
               oracle=True, multi_agent=True,
               players=lambda task: {"soccer": 2, "collect": 3}[task]),
        Family("minigrid", ("empty", "doorkey", "lavagap", "multiroom", "keycorridor",
                            "fourrooms"), "balrog_worker.envs.gridworld:MiniGridGame",
               also_plays=_registered(("MiniGrid-", "BabyAI-"), "minigrid"),
               unavailable=_minigrid_unavailable),
    )
}


def env_ids() -> list[str]:
    """Every available ``env/task`` id."""
    return [f"{family.name}/{task}" for family in FAMILIES.values()
            for task in family.task_ids()]


def check_env_task(env: str, task: str) -> None:
    """Raise ValueError with a one-line message if ``env/task`` (in this project's names,
    see ``canonical``) is not available."""
    if env not in FAMILIES:
        raise ValueError(f"unknown env {env!r}; available: {', '.join(FAMILIES)}")
    family = FAMILIES[env]
    listed = task in family.tasks
    played = listed or family.also_plays(task)
    if played and (reason := family.unavailable(task)):
        raise ValueError(reason)
    tasks = family.task_ids()
    if task not in tasks and not played:
        raise ValueError(f"unknown task {task!r} for env {env!r}; available: {', '.join(tasks)}"
                         " (`balrog-worker envs` lists every id)")


# Other projects' names, accepted wherever an env or task id is: BALROG's env name for
# NetHack, gym ids (BALROG's and MOSAIC's task names), MOSAIC's MultiGrid ids, and
# BALROG's BabyAI tasks, written "BabyAI-MixedTrainLocal-v0/<task>".
ENV_NAMES = {"nle": "nethack", "mosaic_multigrid": "multigrid", "ini_multigrid": "multigrid"}
GYM_IDS = {
    "NetHackChallenge-v0": ("nethack", "challenge"),
    "MiniHack-MazeWalk-9x9-v0": ("minihack", "mazewalk_9x9"),
    "MiniHack-MazeWalk-15x15-v0": ("minihack", "mazewalk_15x15"),
    "MiniHack-Corridor-R3-v0": ("minihack", "corridor_r3"),
    "MiniHack-CorridorBattle-Dark-v0": ("minihack", "corridorbattle_dark"),
    "MiniHack-Quest-Easy-v0": ("minihack", "quest_easy"),
    "MiniHack-Quest-Medium-v0": ("minihack", "quest_medium"),
    "MiniHack-River-v0": ("minihack", "river"),
    "MiniHack-Boxoban-Medium-v0": ("minihack", "boxoban_medium"),
    "MiniHack-Boxoban-Hard-v0": ("minihack", "boxoban_hard"),
    "MultiGrid-Soccer-v0": ("multigrid", "soccer"),
    "MultiGrid-Collect-v0": ("multigrid", "collect"),
    # mosaic-multigrid's ids of the two games (7.0.0's, and MOSAIC's GUI's 6.0.0 names).
    "MosaicMultiGrid-S-2v2-IndAgObs-v1": ("multigrid", "soccer"),
    "MosaicMultiGrid-C-IndAgObs-v1": ("multigrid", "collect"),
    "MosaicMultiGrid-Soccer-2vs2-IndAgObs-v0": ("multigrid", "soccer"),
    "MosaicMultiGrid-Collect-IndAgObs-v0": ("multigrid", "collect"),
    # MOSAIC's GUI offers Crafter as these two; BALROG has one Crafter (its reward is
    # Crafter's, its score the achievements), which both play.
    "CrafterReward-v1": ("crafter", "default"),
    "CrafterNoReward-v1": ("crafter", "default"),
}
TASK_PREFIXES = {"BabyAI-MixedTrainLocal-v0": "babyai"}  # "<prefix>/<task>"


def canonical(env: str, task: str | None = None) -> tuple[str, str | None]:
    """(family, task) in this project's names for an id that may use another project's:
    ``("nle", "NetHackChallenge-v0")``, ``("MiniHack-River-v0", None)``,
    ``("BabyAI-MixedTrainLocal-v0", "goto")`` or ``("babyai",
    "BabyAI-MixedTrainLocal-v0/goto")``. Unknown names pass through unchanged."""
    if env in GYM_IDS:
        return GYM_IDS[env]
    if env in TASK_PREFIXES:
        return TASK_PREFIXES[env], task
    env = ENV_NAMES.get(env, env)
    if task in GYM_IDS and GYM_IDS[task][0] == env:
        return GYM_IDS[task]
    if task:
        prefix, _, goal = task.partition("/")
        if goal and TASK_PREFIXES.get(prefix) == env:
            return env, goal
        if goal and env == "babaisai" and prefix == "env":  # BALROG's "env/goto_win"
            return env, goal
    return env, task


def resolve_alias(env: str, task: str | None) -> tuple[str, str | None]:
    """(env, task) for an env id that may be another project's name (see ``canonical``)."""
    return canonical(env, task)


def make(env: str, task: str) -> Game:
    """A fresh one-player game of ``env/task`` (other projects' names accepted too)."""
    env, task = canonical(env, task)
    check_env_task(env, task)
    family = FAMILIES[env]
    if family.multi_agent:
        raise ValueError(f"{env} is multi-agent: open it with open_game")
    return family.load()(task)


def open_game(env: str, task: str, **options) -> PlayerGame:
    """A fresh game of ``env/task`` in the players' protocol that the episode loop drives,
    opened with its ``options``: a one-player game as ``SoloGame`` (``vision`` where the
    family has ``vision_text``), a multi-agent one with coordination_level,
    observation_mode, opponent and role."""
    env, task = canonical(env, task)
    check_env_task(env, task)
    family = FAMILIES[env]
    if family.multi_agent:
        return family.load()(task, **options)
    return SoloGame(family.load()(task, **options))
