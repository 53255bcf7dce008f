"""MiniHack: small NetHack levels with one goal each, as BALROG plays them.

BALROG's eight MiniHack tasks (plus River, and any registered MiniHack id MOSAIC names)
on ``minihack`` 0.1.6 over BALROG's NLE fork, with BALROG's settings
(``config/config.yaml``, ``minihack_kwargs``), text and actions (``nle_text``), default
action ``north``, and progression (1 when a step's reward reaches 1, the goal reached).

Boxoban: minihack draws each episode's level with Python's global ``random.choice`` over
DeepMind's level files, which BALROG seeds with the episode seed right before the reset.
Here the draw comes from a generator of the game's own seeded the same way (the same
level, and episodes in threads cannot disturb each other), over the levels shipped with
the package in the order of the reference traces (``bundled``).
"""

from __future__ import annotations

import random

from balrog_worker.envs.gym_legacy import gym  # first: gym's quiet import

# isort: split
from minihack.envs.boxohack import BoxoHack

from balrog_worker.envs import bundled
from balrog_worker.envs.nethack import NLEGame, build

TASKS = {
    "boxoban_hard": "MiniHack-Boxoban-Hard-v0",
    "boxoban_medium": "MiniHack-Boxoban-Medium-v0",
    "mazewalk_9x9": "MiniHack-MazeWalk-9x9-v0",
    "mazewalk_15x15": "MiniHack-MazeWalk-15x15-v0",
    "corridor_r3": "MiniHack-Corridor-R3-v0",
    "corridorbattle_dark": "MiniHack-CorridorBattle-Dark-v0",
    "quest_easy": "MiniHack-Quest-Easy-v0",
    "quest_medium": "MiniHack-Quest-Medium-v0",
    "river": "MiniHack-River-v0",
}
# Boxoban ids -> the level set their minihack class reads.
BOXOBAN_SETS = {"MiniHack-Boxoban-Hard-v0": "hard", "MiniHack-Boxoban-Medium-v0": "medium"}

# BALROG's MiniHack settings (its config.yaml, minihack_kwargs): a random role, 100
# steps, a -0.01 penalty per step, no automatic picking up (minihack's default is on),
# no recordings. (minihack's Boxoban classes set their own time penalty of -0.001.)
MINIHACK_SETTINGS = {"character": "@", "max_episode_steps": 100, "penalty_step": -0.01,
                     "penalty_time": 0.0, "penalty_mode": "constant", "savedir": None,
                     "save_ttyrec_every": 0, "autopickup": False}
# The observations BALROG's MiniHack env asks for.
OBSERVATION_KEYS = ("glyphs", "blstats", "tty_chars", "inv_letters", "inv_strs", "tty_cursor",
                    "tty_colors")

# BALROG's goals, by the words its task names contain (our wording, its information).
GOALS = {
    "corridor": "Your goal is to explore the level and reach the stairs down.",
    "quest": "Your goal is to explore the level, fight monsters, and find your way through "
             "rooms and mazes to reach the stairs down.",
    "boxoban": "You are playing Boxoban, a box-pushing game like Sokoban. Your goal is to "
               "push the boulders onto the fountains of the map. You push a boulder by "
               "walking into it, if nothing stands behind it.",
}
OTHER_GOAL = "Your goal is to get as far as you can in the game."


def goal(task: str) -> str:
    task = task.lower()
    return next((text for word, text in GOALS.items() if word in task), OTHER_GOAL)


class Boxoban(BoxoHack):
    """minihack's Boxoban-Hard and -Medium (its shaping and time penalty), its level drawn
    from this env's own generator over the shipped levels."""

    def __init__(self, *args, level_set: str, **kwargs):
        self._all_levels = bundled.boxoban_levels(level_set)
        self._level_rng = random.Random(0)
        # minihack reads the *.txt files of this folder: there are none (the levels are
        # kept as records), and get_lvl_gen below draws from them.
        kwargs.update(level_set=str(self._all_levels.path.parent), level_mode="",
                      reward_shaping_coefficient=0.1, penalty_time=-0.001)
        super().__init__(*args, **kwargs)

    def draw_levels_from(self, seed: int) -> None:
        """Seed the level draws as BALROG's ``random.seed(seed)`` before a reset does."""
        self._level_rng = random.Random(seed)

    def get_lvl_gen(self):
        # The draw minihack makes with the global generator, made with ours; then
        # minihack's own construction of the level from the one level left to choose.
        self._levels = [self._level_rng.choice(self._all_levels)]
        return super().get_lvl_gen()


def make_env(env_id: str):
    """The gym env of a MiniHack id, built as BALROG builds it."""
    settings = {"observation_keys": OBSERVATION_KEYS, **MINIHACK_SETTINGS}
    if env_id in BOXOBAN_SETS:
        return build(lambda: Boxoban(level_set=BOXOBAN_SETS[env_id], **settings))
    return build(lambda: gym.make(env_id, **settings))


def registered(env_id: str) -> bool:
    """Whether ``env_id`` is a MiniHack id minihack registers."""
    return env_id.startswith("MiniHack-") and env_id in gym.envs.registry.env_specs


class MiniHackGame(NLEGame):
    family = "minihack"
    default_action = "north"

    def __init__(self, task: str, vision: bool = False):
        self.env_id = TASKS.get(task, task)  # or any registered MiniHack id
        super().__init__(task, make_env(self.env_id), minihack=True, vision=vision)
        self._progression = 0.0

    def instructions(self) -> str:
        # The information of BALROG's MiniHack prompt: the actions, one tip, the goal.
        actions = "\n".join(f"{name}: {text}" for name, text in self.actions.items())
        return (
            "You are an agent playing MiniHack. These are the actions you can take, each "
            f"with what it does:\n\n{actions}\n\nA history of actions and observations "
            "from the game will follow.\n\nTip: repeating the same action achieves nothing "
            f"if nothing changes.\n\n{goal(self.env_id)}\n\nPLAY!"
        )

    def reset(self, seed: int):
        if isinstance(self.nle, Boxoban):
            self.nle.draw_levels_from(seed)
        self._progression = 0.0
        return super().reset(seed)

    def _track(self, reward: float) -> None:
        # BALROG's rule, applied after every step: 1 if this step's reward reached 1.
        self._progression = 1.0 if reward >= 1.0 else 0.0

    def progression(self) -> float:
        return self._progression

    def episode_info(self) -> dict:
        return {"end": self._end_reason()}
