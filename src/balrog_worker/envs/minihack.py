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

GOALS = {
    "mazewalk": "Find your way through the maze to the staircase down (>) and go down it.",
    "corridor": "Follow the corridors to the staircase down (>) and go down it.",
    "corridorbattle": "Fight your way through the dark corridor full of monsters to the "
                      "staircase down (>) and go down it.",
    "quest": "Cross the level, dealing with what stands in your way, and reach the "
             "staircase down (>).",
    "river": "Cross the river to the staircase down (>): push boulders into the water to "
             "build a crossing.",
    "boxoban": "Push every boulder (0) onto a fountain ({). Boulders move when you walk into "
               "them and cannot be pulled.",
}


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
            env_id = TASKS[task]
        super().__init__(task, gym.make(env_id, observation_keys=OBSERVATION_KEYS))
        self._success = False

    def instructions(self) -> str:
        goal = GOALS[self.task.split("_")[0]]
        actions = "\n".join(f"- {name}: {text}" for name, text in self.actions.items())
        return (
            "You are playing MiniHack, a small level of the roguelike NetHack drawn in "
            "ASCII characters. Your character is the @ symbol.\n\n"
            f"Your goal: {goal}\n\n"
            "Each turn you read the message line, a description of what is around you "
            "with exact offsets (north is up the screen), the cursor, and the screen.\n\n"
            f"The actions you can take:\n{actions}"
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
