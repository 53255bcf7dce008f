"""BabyAI as BALROG plays it: ``BabyAI-MixedTrainLocal-v0`` of BALROG's Minigrid fork.

BALROG (``balrog/environments/babyai_text``) makes the fork's ``Level_MixedTrainLocal``
with ``num_dists=0`` until its instruction kind is the task, and describes the agent's
view with the fork's ``gen_graph`` text. Neither is in minigrid 3.2, so both are rebuilt
here on minigrid's own level machinery (the fork's core is minigrid's, unchanged). Every
random draw is made in the fork's order, from the env's generator seeded by
``reset(seed)``, so a (task, seed) gives BALROG's level: tested line by line against
BALROG's own output (``tests/test_golden_babyai.py``).

The level, per task (one 8x8 room; two side by side for ``open``):
- goto, pickup: one object; putnext, pick_up_seq_go_to: two; open: a locked door and its
  key in the agent's room;
- a mission naming a yellow box, red key, red door, green ball or grey door is rejected
  and the level drawn again, as are levels with an unreachable object.
"""

from __future__ import annotations

import numpy as np
from minigrid.core.roomgrid import RoomGrid
from minigrid.envs.babyai.core.levelgen import LevelGen
from minigrid.envs.babyai.core.roomgrid_level import RejectSampling
from minigrid.envs.babyai.core.verifier import (
    AfterInstr,
    BeforeInstr,
    GoToInstr,
    ObjDesc,
    OpenInstr,
    PickupInstr,
    PutNextInstr,
)

from balrog_worker.envs.base import Observation
from balrog_worker.envs.grid_view import encoded_view
from balrog_worker.envs.gridworld import GridWorldGame

TASKS = ("goto", "pickup", "open", "putnext", "pick_up_seq_go_to")
BALROG_LEVEL = "BabyAI-MixedTrainLocal-v0"

# Held out of training by the level's authors (Carta et al., 2023), and so by BALROG.
EXCLUDED_PHRASES = ("yellow box", "red key", "red door", "green ball", "grey door")
# The colours a locked door may take (red and grey are held out).
LOCKED_DOOR_COLORS = ("yellow", "green", "blue", "purple")


class MixedTrainLocal(LevelGen):
    """The fork's ``Level_MixedTrainLocal`` with its instruction kind fixed to ``task``."""

    def __init__(self, task: str, num_dists: int = 0, **kwargs):
        if task not in TASKS:
            raise ValueError(f"unknown BabyAI task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        super().__init__(
            room_size=8, num_rows=1, num_cols=2 if task == "open" else 1,
            num_dists=num_dists, instr_kinds=("action", "seq1"), locations=False,
            unblocking=False, implicit_unlock=False, action_kinds=(task,), **kwargs)

    def gen_obs(self):
        # minigrid's observation, its view made without the intermediate grids
        # (``grid_view``: a quarter of the CPU, equal array for array).
        return {"image": encoded_view(self), "direction": self.agent_dir,
                "mission": self.mission}

    def _gen_grid(self, width, height):
        # minigrid's RoomGridLevel loop, without its print of every rejected level: this
        # process's stdout may be a JSONL stream (--emit-jsonl, serve).
        while True:
            try:
                RoomGrid._gen_grid(self, width, height)
                self.gen_mission()
                self.validate_instrs(self.instrs)
            except (RecursionError, RejectSampling):
                continue
            break
        self.surface = self.instrs.surface(self)
        self.mission = self.surface

    def gen_mission(self):
        # The fork draws the kind from a one-element list: a draw that changes nothing
        # but the generator's state, so it is made here too.
        self._rand_elem([self.task])
        generate = getattr(self, f"_gen_{self.task}")
        while True:
            # The fork rebuilds the empty rooms (redrawing their door positions) before
            # every attempt, the first included.
            RoomGrid._gen_grid(self, self.width, self.height)
            reachable = generate()
            if not self._excluded() and reachable:
                return

    def _excluded(self) -> bool:
        mission = self.instrs.surface(self)
        return any(phrase in mission for phrase in EXCLUDED_PHRASES)

    def _objects(self, extra: int) -> tuple[list, bool]:
        """The agent, then ``num_dists + extra`` objects in the room."""
        self.place_agent()
        objs = self.add_distractors(num_distractors=self.num_dists + extra, all_unique=False)
        return objs, self.check_objs_reachable(raise_exc=False)

    def _pick(self, objs, not_door: bool = False):
        obj = self._rand_elem(objs)
        while not_door and obj.type == "door":
            obj = self._rand_elem(objs)
        return obj

    def _pick_other(self, objs, first):
        """A second object, different in kind from ``first`` when ``first`` is unique."""
        second = self._rand_elem(objs)
        if (second.type, second.color) == (first.type, first.color):
            matches, _ = ObjDesc(first.type, first.color).find_matching_objs(self)
            if len(matches) < 2:
                while (second.type, second.color) == (first.type, first.color):
                    second = self._rand_elem(objs)
        return second

    def _gen_open(self) -> bool:
        color = self._rand_elem(list(LOCKED_DOOR_COLORS))
        self._add_locked_room(color)
        self.connect_all()
        for i in range(self.num_cols):
            if self.get_room(i, 0) is not self.locked_room:
                self.add_distractors(i, 0, num_distractors=self.num_dists, all_unique=False)
        while True:
            self.place_agent()
            if self.room_from_pos(*self.agent_pos) is not self.locked_room:
                break
        reachable = self.check_objs_reachable(raise_exc=False)
        self.instrs = OpenInstr(ObjDesc("door", self._rand_elem([None, color])))
        return reachable

    def _add_locked_room(self, color: str) -> None:
        """A locked door of ``color`` into a random room, its key in another room."""
        while True:
            i = self._rand_int(0, self.num_cols)
            j = self._rand_int(0, self.num_rows)
            door_idx = self._rand_int(0, 4)
            self.locked_room = self.get_room(i, j)
            if self.locked_room.neighbors[door_idx] is not None:
                door, _ = self.add_door(i, j, door_idx, color=color, locked=True)
                break
        while True:
            i = self._rand_int(0, self.num_cols)
            j = self._rand_int(0, self.num_rows)
            if self.get_room(i, j) is not self.locked_room:
                self.add_object(i, j, "key", door.color)
                return

    def _gen_goto(self) -> bool:
        objs, reachable = self._objects(1)
        obj = self._pick(objs)
        self.instrs = GoToInstr(ObjDesc(obj.type, obj.color))
        return reachable

    def _gen_pickup(self) -> bool:
        objs, reachable = self._objects(1)
        obj = self._pick(objs, not_door=True)
        self.instrs = PickupInstr(ObjDesc(obj.type, obj.color))
        return reachable

    def _gen_putnext(self) -> bool:
        objs, reachable = self._objects(2)
        moved = self._pick(objs, not_door=True)
        fixed = self._pick_other(objs, moved)
        self.instrs = PutNextInstr(ObjDesc(moved.type, moved.color),
                                   ObjDesc(fixed.type, fixed.color))
        return reachable

    def _gen_pick_up_seq_go_to(self) -> bool:
        objs, reachable = self._objects(2)
        picked = self._pick(objs, not_door=True)
        pick_up = PickupInstr(ObjDesc(picked.type, picked.color))
        target = self._pick_other(objs, picked)
        go_to = GoToInstr(ObjDesc(target.type, target.color))
        # "pick up A, then go to B" or "go to B after you pick up A": the same task.
        if self._rand_elem(["Before", "After"]) == "Before":
            self.instrs = BeforeInstr(pick_up, go_to)
        else:
            self.instrs = AfterInstr(go_to, pick_up)
        return reachable


# --- BabyAI-Text: the fork's description of the agent's 7x7 view --------------------

_UNSEEN, _EMPTY, _WALL, _DOOR = 0, 1, 2, 4
_DOOR_STATES = ("open", "closed", "locked")


def _steps(count: int, direction: str) -> str:
    return f"{count} step{'s' if count > 1 else ''} {direction}"


def describe_view(env, view: np.ndarray | None = None) -> str:
    """BALROG's long-term context for a MiniGrid env: what the agent carries, the first
    wall straight ahead, left and right (unless something stands before it), then every
    other visible thing with its offset, scanned column by column of the view. ``view``:
    the encoded view of the env's last observation, if at hand (else computed)."""
    from minigrid.core.constants import IDX_TO_COLOR, IDX_TO_OBJECT

    if view is None:
        grid, visible = env.gen_obs_grid()
        view = grid.encode(visible)
    x0, y0 = env.get_view_coords(*env.agent_pos)
    codes = view.tolist()  # plain ints: indexing numpy cell by cell cost more than the rest
    lines = []
    if env.carrying is not None:
        lines.append(f"You carry a {env.carrying.color} {env.carrying.type}")
    # Lines of sight: (direction, the cells along it, nearest first).
    for direction, cells in (("forward", [(x0, y) for y in range(y0 - 1, -1, -1)]),
                             ("left", [(x, y0) for x in range(x0 - 1, -1, -1)]),
                             ("right", [(x, y0) for x in range(x0 + 1, view.shape[0])])):
        for distance, (x, y) in enumerate(cells, start=1):
            kind = codes[x][y][0]
            if kind in (_UNSEEN, _EMPTY):
                continue
            if kind == _WALL:
                lines.append(f"a wall {_steps(distance, direction)}")
            break
    for x in range(view.shape[0]):
        for y in range(view.shape[1]):
            kind, color, state = codes[x][y]
            if kind in (_UNSEEN, _EMPTY, _WALL) or (x, y) == (x0, y0):
                continue
            # The fork names every door with "a", open ones included ("a open ...").
            name = f"{IDX_TO_COLOR[color]} {IDX_TO_OBJECT[kind]}"
            if kind == _DOOR:
                name = f"{_DOOR_STATES[state]} {name}"
            right, forward = x - x0, y0 - y
            if right == 0:
                offset = _steps(forward, "forward")
            elif forward == 0:
                offset = _steps(abs(right), "right" if right > 0 else "left")
            else:
                offset = (f"{_steps(abs(right), 'right' if right > 0 else 'left')} and "
                          f"{_steps(forward, 'forward')}")
            lines.append(f"a {name} {offset}")
    return "\n".join(lines)


ACTION_HELP = {
    "turn left": "turn 90 degrees to the left",
    "turn right": "turn 90 degrees to the right",
    "go forward": "move one step forward",
    "pick up": "pick up the object in front of you",
    "drop": "drop the object you are holding",
    "toggle": "use the object in front of you (open a door, for example)",
}


class BabyAIGame(GridWorldGame):
    family = "babyai"
    world = "BabyAI, a grid world of rooms"

    def __init__(self, task: str):
        if task in TASKS:
            level = MixedTrainLocal(task, render_mode="rgb_array")
        else:  # any registered BabyAI id (as MOSAIC passes them), with BALROG's text
            import gymnasium as gym

            level = gym.make(task, render_mode="rgb_array")
        super().__init__(task, level)

    @property
    def actions(self) -> dict[str, str]:
        return dict(ACTION_HELP)

    def mission(self) -> str | None:
        return self.env.mission

    def instructions(self) -> str:
        # What BALROG's prompt says: the game, the goal (the mission), the actions with a
        # short description, two tips, and that observations follow. No more.
        actions = "\n".join(f"{name}: {text}" for name, text in ACTION_HELP.items())
        return (
            "You are an agent in a simple grid navigation game. Your goal is to "
            f"{self.env.mission}. These are the actions you can take, each with what it "
            f"does:\n\n{actions}\n\nAn observation of what you see will follow.\n\n"
            "Tips:\n- When the object you want to use or pick up is in front of you, the "
            "'toggle' action interacts with it.\n- Repeating the same action while the "
            "observation stays the same achieves nothing.\n\nPLAY!"
        )

    def frame(self) -> np.ndarray:
        # BALROG's image for BabyAI is the agent's point of view, 16-pixel tiles.
        return self.env.get_pov_render(tile_size=16)

    def display(self) -> np.ndarray:
        # The whole grid, as the environment renders it (MOSAIC's panel shows this).
        return self.env.get_frame(highlight=True, tile_size=32, agent_pov=False)

    def _observe(self) -> Observation:
        return Observation(describe_view(self.env, self._seen))
