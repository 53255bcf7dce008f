"""BabyAI as BALROG plays it: single-room levels mixing five instruction kinds.

BALROG evaluates on BabyAI-Text's ``MixedTrainLocal`` level filtered by instruction kind.
minigrid 3.2 does not register that level, so it is rebuilt here from minigrid's
``LevelGen`` and instruction classes: one 8x8 room with 8 distractors (two rooms joined by
a closed door for ``open``), no location words, nothing to unblock. Each task fixes the
instruction kind instead of rejection-sampling a mixed level. The step limit is
minigrid's own: 64 steps per navigation (64, or 128 for two rooms or two goals).
"""

from __future__ import annotations

from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.verifier import (
    OBJ_TYPES_NOT_DOOR,
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    PickupInstr,
)

from balrog_worker.envs.gridworld import GridWorldGame

TASKS = ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to")


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


class BabyAIGame(GridWorldGame):
    family = "babyai"
    world = "BabyAI, a grid world of rooms"

    def __init__(self, task: str):
        super().__init__(task, MixedLocalLevel(task, render_mode="rgb_array"))
