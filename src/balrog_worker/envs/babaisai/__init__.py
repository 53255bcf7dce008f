"""BabaIsAI as BALROG plays it: 40 rule-manipulation puzzles of Baba Is AI.

``engine`` holds the rules engine, ``levels`` the per-seed level generators; this module
is the game the harness plays: BALROG's text (active rules, then every object and rule
block with its offset from the YOU object), actions idle/up/right/down/left (default
idle), progression 1 on a win. As BALROG's wrapper does, a level left without a YOU
object is reset (a new layout drawn from the same stream), and the observation says so.
"""

from __future__ import annotations

import numpy as np

from balrog_worker.envs.babaisai.engine import ACTIONS, Board
from balrog_worker.envs.babaisai.frames import board_frame
from balrog_worker.envs.babaisai.levels import TASKS, generate
from balrog_worker.envs.base import Game, Observation, StepOutcome

ACTION_HELP = {
    "idle": "wait one step",
    "up": "move one step up",
    "right": "move one step to the right",
    "down": "move one step down",
    "left": "move one step to the left",
}
RESET_NOTE = "No object is YOU any more (its rule was broken): the level was reset.\n\n"


class BabaIsAIGame(Game):
    family = "babaisai"
    default_action = "idle"

    def __init__(self, task: str):
        if task not in TASKS:
            raise ValueError(f"unknown BabaIsAI task {task!r}")
        self.task = task
        self.board: Board | None = None
        self.target_plan = ""
        self._rng: np.random.RandomState | None = None
        self._progression = 0.0
        self.internal_resets: list[int] = []
        self._steps = 0

    @property
    def actions(self) -> dict[str, str]:
        return dict(ACTION_HELP)

    def instructions(self) -> str:
        # The information of BALROG's prompt: the game, the actions, its tips.
        actions = "\n".join(f"{name}: {text}" for name, text in ACTION_HELP.items())
        return (
            "Baba Is You is a puzzle game in which you can change the rules of each level. "
            f"These are the actions you can take, each with what it does:\n\n{actions}\n\n"
            "Tips:\n"
            "- Look at the whole level: every object and every text block.\n"
            "- Rules are text blocks in a line, [Subject] IS [Property] (e.g. BABA IS YOU).\n"
            "- Pushing text blocks makes new rules or breaks existing ones.\n"
            "- You can move only what is not STOP (or similar).\n"
            "- The goal is usually to reach an object that is WIN, but that can change.\n"
            "- Changing rules can change what objects do in unexpected ways.\n"
            "- If you are stuck, break existing rules or form new ones.\n"
            "- Sometimes the solution is to become another object or to change what "
            "counts as winning.\n\nPLAY!"
        )

    def reset(self, seed: int) -> Observation:
        # upstream draws from numpy's global generator right after np.random.seed(seed)
        self._rng = np.random.RandomState(seed)
        self.board, self.target_plan = generate(self.task, self._rng)
        self._progression = 0.0
        self.internal_resets = []
        self._steps = 0
        return Observation(self.board.text())

    def step(self, action: str) -> StepOutcome:
        reward, done = self.board.step(action)
        self._steps += 1
        if done:
            self._progression = 1.0 if reward > 0 else 0.0
        text = self.board.objects_text()
        if text is None:  # no YOU: BALROG's wrapper resets the level, and goes on
            self.internal_resets.append(self._steps)
            self.board, self.target_plan = generate(self.task, self._rng)
            self._progression = 0.0
            return StepOutcome(Observation(RESET_NOTE + self.board.text()), float(reward),
                               bool(done), False)
        return StepOutcome(Observation(self.board.text()), float(reward), bool(done), False)

    def progression(self) -> float:
        return self._progression

    def frame(self) -> np.ndarray:
        return board_frame(self.board)

    def oracle_action(self) -> str:
        from balrog_worker.envs.babaisai.solver import next_action

        return next_action(self.board, self.board.max_steps - self.board.step_count)

    def episode_info(self) -> dict:
        return {"target_plan": self.target_plan, "internal_resets": list(self.internal_resets)}


__all__ = ["ACTIONS", "TASKS", "BabaIsAIGame"]
