"""BabyAI as BALROG plays it: single-room levels mixing five instruction kinds.

BALROG evaluates on BabyAI-Text's ``MixedTrainLocal`` level filtered by instruction kind.
minigrid 3.2 does not register that level, so it is rebuilt here from minigrid's
``LevelGen`` and instruction classes: one 8x8 room with 8 distractors (two rooms joined by
a closed door for ``open``), no location words, nothing to unblock. Each task fixes the
instruction kind instead of rejection-sampling a mixed level. The step limit is
minigrid's own: 64 steps per navigation (64, or 128 for two rooms or two goals).
"""

from __future__ import annotations

import numpy as np
from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.verifier import (
    OBJ_TYPES_NOT_DOOR,
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    PickupInstr,
)

from balrog_worker.envs.base import Game, Observation, StepOutcome
from balrog_worker.envs.grid_text import describe_view

TASKS = ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to")

# Text action -> minigrid action index. minigrid's "done" (6) is not offered, as in BALROG.
ACTIONS = {
    "turn left": (0, "turn 90 degrees to your left, staying in the same cell"),
    "turn right": (1, "turn 90 degrees to your right, staying in the same cell"),
    "go forward": (2, "move one cell in the direction you face"),
    "pick up": (3, "pick up the object directly in front of you (1 step forward)"),
    "drop": (4, "put the object you carry in the empty cell in front of you"),
    "toggle": (5, "open or close the door in front of you (a locked door needs its key)"),
}


class MixedLocalLevel(LevelGen):
    """One BabyAI level whose instruction kind is fixed by ``task``."""

    def __init__(self, task: str, **kwargs):
        if task not in TASKS:
            raise ValueError(f"unknown BabyAI task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        action = "pickup" if task == "pick_up_seq_go_to" else task
        super().__init__(
            room_size=8,
            num_rows=1,
            num_cols=2 if task == "open" else 1,
            num_dists=8,
            locked_room_prob=0,
            locations=False,
            unblocking=False,
            implicit_unlock=False,
            action_kinds=[action],
            instr_kinds=["action"],
            **kwargs,
        )

    def rand_instr(self, action_kinds, instr_kinds, depth=0):
        if self.task != "pick_up_seq_go_to":
            return super().rand_instr(action_kinds, instr_kinds, depth)
        pick_up = PickupInstr(self.rand_obj(types=OBJ_TYPES_NOT_DOOR))
        go_to = GoToInstr(self.rand_obj())
        # "pick up A, then go to B" and "go to B after you pick up A" are the same task.
        return BeforeInstr(pick_up, go_to) if self._rand_bool() else AfterInstr(go_to, pick_up)


class BabyAIGame(Game):
    family = "babyai"
    default_action = "go forward"

    def __init__(self, task: str):
        self.task = task
        self.env = MixedLocalLevel(task, render_mode="rgb_array")
        self._success = False

    @property
    def actions(self) -> dict[str, str]:
        return {name: description for name, (_, description) in ACTIONS.items()}

    def instructions(self) -> str:
        actions = "\n".join(f"- {name}: {text}" for name, text in self.actions.items())
        return (
            "You are an agent in BabyAI, a grid world of rooms seen from above. Each turn you "
            "are told what you can see from where you stand: the cells ahead of you and to "
            "your sides, described by how many steps to your left or right and how many "
            "steps forward they are. You cannot see behind you or through walls and closed "
            "doors. You can carry one object at a time.\n\n"
            f"Your mission: {self.env.mission}.\n\n"
            f"The actions you can take:\n{actions}\n\n"
            "To go to an object, stand in the cell next to it, facing it. To pick it up, face "
            "it from the next cell (1 step forward) and pick up."
        )

    def reset(self, seed: int) -> Observation:
        self.env.reset(seed=seed)
        self._success = False
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        _, reward, terminated, truncated, _ = self.env.step(ACTIONS[action][0])
        self._success = self._success or reward > 0
        return StepOutcome(self._observe(), float(reward), bool(terminated), bool(truncated))

    def progression(self) -> float:
        return 1.0 if self._success else 0.0

    def frame(self) -> np.ndarray:
        return self.env.render()

    def episode_info(self) -> dict:
        return {"mission": self.env.mission}

    def _observe(self) -> Observation:
        return Observation(f"Mission: {self.env.mission}\n{describe_view(self.env)}")

    def close(self) -> None:
        self.env.close()
