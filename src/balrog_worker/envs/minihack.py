"""MiniHack: small NetHack levels with one goal each, rendered like NetHack.

Tasks are BALROG's MiniHack set plus River. A task succeeds (progression 1) when the
level's reward reaches 1 (the goal reached, the quest done). Boxoban levels are a
separate download that cannot happen offline: those tasks work once the level files
are in place and otherwise fail with instructions.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import gymnasium as gym
import minihack  # noqa: F401 - registers the MiniHack ids with gymnasium

from balrog_worker.envs.nethack import OBSERVATION_KEYS, NLEGame

TASKS = {
    "mazewalk_9x9": "MiniHack-MazeWalk-9x9-v0",
    "mazewalk_15x15": "MiniHack-MazeWalk-15x15-v0",
    "corridor_r3": "MiniHack-Corridor-R3-v0",
    "corridorbattle_dark": "MiniHack-CorridorBattle-Dark-v0",
    "quest_easy": "MiniHack-Quest-Easy-v0",
    "quest_medium": "MiniHack-Quest-Medium-v0",
    "river": "MiniHack-River-v0",
}
BOXOBAN_TASKS = {
    # task: (env id, level set directory)
    "boxoban_medium": ("MiniHack-Boxoban-Medium-v0", "medium"),
    "boxoban_hard": ("MiniHack-Boxoban-Hard-v0", "hard"),
}

# BALROG's MiniHack settings (its config.yaml, minihack_kwargs): a random role, 100
# steps, a -0.01 penalty per step, and no automatic picking up (minihack's default is on).
MINIHACK_SETTINGS = {"character": "@", "max_episode_steps": 100, "penalty_step": -0.01,
                     "penalty_time": 0.0, "penalty_mode": "constant", "autopickup": False}

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
    return next((text for word, text in GOALS.items() if word in task), OTHER_GOAL)


def boxoban_levels_dir(level_set: str) -> Path:
    """Where minihack looks for the Boxoban level files of ``level_set``."""
    spec = importlib.util.find_spec("minihack")
    root = Path(next(iter(spec.submodule_search_locations)))
    return root / "dat" / "boxoban-levels-master" / level_set


def boxoban_missing(task: str) -> str | None:
    """Why a Boxoban task cannot run here (its level files are missing), or None."""
    levels = boxoban_levels_dir(BOXOBAN_TASKS[task][1])
    if levels.is_dir():
        return None
    return (
        f"minihack/{task} needs the Boxoban levels, which cannot be downloaded offline: "
        f"unpack DeepMind's boxoban-levels repository so that {levels} exists (minihack's "
        f"scripts/download_boxoban_levels.py does this where there is internet)"
    )


class MiniHackGame(NLEGame):
    family = "minihack"
    default_action = "north"

    def __init__(self, task: str):
        if task in BOXOBAN_TASKS:
            if reason := boxoban_missing(task):
                raise FileNotFoundError(reason)
            env_id = BOXOBAN_TASKS[task][0]
        else:
            env_id = TASKS.get(task, task)  # or any registered MiniHack id
        super().__init__(task, gym.make(env_id, observation_keys=OBSERVATION_KEYS,
                                        **MINIHACK_SETTINGS), minihack=True)
        self._success = False

    def instructions(self) -> str:
        # The information of BALROG's MiniHack prompt: the actions, one tip, the goal.
        actions = "\n".join(f"{name}: {text}" for name, text in self.actions.items())
        return (
            "You are an agent playing MiniHack. These are the actions you can take, each "
            f"with what it does:\n\n{actions}\n\nA history of actions and observations "
            "from the game will follow.\n\nTip: repeating the same action achieves nothing "
            f"if nothing changes.\n\n{goal(self.task)}\n\nPLAY!"
        )

    def reset(self, seed: int):
        self._success = False
        return super().reset(seed)

    def step(self, action: str):
        outcome = super().step(action)
        self._success = self._success or outcome.reward >= 1.0
        return outcome

    def progression(self) -> float:
        return 1.0 if self._success else 0.0

    def episode_info(self) -> dict:
        return {"end": self._done_reason}
