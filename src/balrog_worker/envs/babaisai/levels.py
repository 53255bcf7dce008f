"""The 40 levels of Baba Is AI that BALROG evaluates, generated per seed as upstream does.

Upstream (``baba/envs.py``) draws every layout from numpy's global generator, which
BALROG seeds with ``np.random.seed(S)`` right before the reset. Here each level is drawn
from a private ``np.random.RandomState(S)`` (the same stream, without global state),
making the same draws in the same order, so a task and seed give upstream's level:
tested against its own output (``tests/test_golden_babaisai.py``).

Two layouts: one 8x8 room (goto_win, make_win and their distractor variants), and two
rooms split by a wall column, 13x9 (the two_room tasks): the player starts in the left
room; "wall is stop" may have to be broken, "X is win" made, or another object made YOU.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from balrog_worker.envs.babaisai.engine import DEFAULT_COLORS, Board, Thing

NAMES = ("ball", "key", "door")
COLORS = ("red", "blue", "green")
KIND = {"ball": "fball", "key": "fkey", "door": "fdoor", "wall": "fwall", "baba": "baba"}
PROPERTY = {"you": "is_agent", "win": "is_goal", "stop": "is_stop"}


@dataclass(frozen=True)
class SingleRoom:
    """upstream's MakeWinEnv and its variants (8x8)."""

    break_win_rule: bool = True
    distractor_obj: bool = True
    distractor_rule_block: bool = True
    irrelevant_rule_distractor: bool = False
    distractor_win_rule: bool = False


@dataclass(frozen=True)
class TwoRooms:
    """upstream's TwoRoomEnv and its variants (13x9)."""

    obj1_pos: str = "anywhere"
    obj2_pos: str = "anywhere"
    break_stop_rule: bool = False
    break_win_rule: bool = False
    distractor_obj: bool = True
    distractor_rule_block: bool = True
    irrelevant_rule_distractor: bool = False
    distractor_win_rule: bool = False


@dataclass(frozen=True)
class MakeYou:
    """upstream's TwoRoomMakeYouEnv: another object has to be made YOU."""

    break_win_rule: bool = False


@dataclass(frozen=True)
class MakeWallWin:
    """upstream's TwoRoomMakeWallWinEnv: the dividing wall has to be made WIN."""


_LEFT = {"obj1_pos": "left_anywhere", "obj2_pos": "left_anywhere"}
_RIGHT = {"obj1_pos": "right_anywhere", "obj2_pos": "right_anywhere"}
_ANY = {"obj1_pos": "anywhere", "obj2_pos": "anywhere"}

# BALROG's task list (its config.yaml, in its order; BALROG writes them "env/<task>") and
# each task's level.
TASKS: dict[str, object] = {
    "make_win-distr_obj_rule": SingleRoom(),
    "goto_win-distr_obj_rule": SingleRoom(break_win_rule=False),
    "goto_win": SingleRoom(break_win_rule=False, distractor_obj=False,
                               distractor_rule_block=False),
    "goto_win-distr_obj": SingleRoom(break_win_rule=False, distractor_rule_block=False),
    "goto_win-distr_rule": SingleRoom(break_win_rule=False, distractor_obj=False),
    "goto_win-distr_obj-irrelevant_rule": SingleRoom(break_win_rule=False,
                                                         irrelevant_rule_distractor=True),
    "make_win-distr_obj": SingleRoom(distractor_rule_block=False),
    "make_win-distr_rule": SingleRoom(distractor_obj=False),
    "make_win": SingleRoom(distractor_obj=False, distractor_rule_block=False),
    "make_win-distr_obj-irrelevant_rule": SingleRoom(irrelevant_rule_distractor=True),
    "two_room-goto_win": TwoRooms(**_LEFT, distractor_obj=False,
                                      distractor_rule_block=False, break_stop_rule=True),
    "two_room-goto_win-distr_obj_rule": TwoRooms(**_LEFT, break_stop_rule=True),
    "two_room-goto_win-distr_rule": TwoRooms(**_LEFT, distractor_obj=False,
                                                 break_stop_rule=True),
    "two_room-goto_win-distr_obj": TwoRooms(**_LEFT, distractor_rule_block=False,
                                                break_stop_rule=True),
    "two_room-goto_win-distr_obj-irrelevant_rule": TwoRooms(
        **_LEFT, irrelevant_rule_distractor=True, break_stop_rule=True),
    "two_room-goto_win-distr_win_rule": TwoRooms(**_LEFT, distractor_win_rule=True,
                                                     break_stop_rule=True),
    "two_room-break_stop-goto_win-distr_obj_rule": TwoRooms(**_RIGHT),
    "two_room-break_stop-goto_win-distr_obj": TwoRooms(**_RIGHT,
                                                           distractor_rule_block=False),
    "two_room-break_stop-goto_win-distr_rule": TwoRooms(**_RIGHT, distractor_obj=False),
    "two_room-break_stop-goto_win-distr_obj-irrelevant_rule": TwoRooms(
        **_RIGHT, irrelevant_rule_distractor=True),
    "two_room-break_stop-goto_win": TwoRooms(**_RIGHT, distractor_obj=False,
                                                 distractor_rule_block=False),
    "two_room-maybe_break_stop-goto_win-distr_obj_rule": TwoRooms(**_ANY),
    "two_room-maybe_break_stop-goto_win": TwoRooms(**_ANY, distractor_obj=False,
                                                       distractor_rule_block=False),
    "two_room-maybe_break_stop-goto_win-distr_obj": TwoRooms(
        **_ANY, distractor_rule_block=False),
    "two_room-maybe_break_stop-goto_win-distr_rule": TwoRooms(**_ANY,
                                                                  distractor_obj=False),
    "two_room-maybe_break_stop-goto_win-distr_obj-irrelevant_rule": TwoRooms(
        **_ANY, irrelevant_rule_distractor=True),
    "two_room-make_win-distr_obj_rule": TwoRooms(**_LEFT, break_stop_rule=True,
                                                     break_win_rule=True),
    "two_room-make_win-distr_rule": TwoRooms(**_LEFT, break_stop_rule=True,
                                                 break_win_rule=True, distractor_obj=False),
    "two_room-make_win": TwoRooms(**_LEFT, break_stop_rule=True, break_win_rule=True,
                                      distractor_obj=False, distractor_rule_block=False),
    "two_room-make_win-distr_obj-irrelevant_rule": TwoRooms(
        **_LEFT, break_stop_rule=True, break_win_rule=True, irrelevant_rule_distractor=True),
    "two_room-make_win-distr_obj": TwoRooms(**_LEFT, break_stop_rule=True,
                                                break_win_rule=True,
                                                distractor_rule_block=False),
    "two_room-make_win-distr_win_rule": TwoRooms(**_LEFT, distractor_win_rule=True,
                                                     break_win_rule=True,
                                                     break_stop_rule=True),
    "two_room-break_stop-make_win-distr_obj_rule": TwoRooms(**_RIGHT,
                                                                break_win_rule=True),
    "two_room-break_stop-make_win-distr_rule": TwoRooms(**_RIGHT, break_win_rule=True,
                                                            distractor_obj=False),
    "two_room-break_stop-make_win": TwoRooms(**_RIGHT, break_win_rule=True,
                                                 distractor_obj=False,
                                                 distractor_rule_block=False),
    "two_room-break_stop-make_win-distr_obj-irrelevant_rule": TwoRooms(
        **_RIGHT, break_win_rule=True, irrelevant_rule_distractor=True),
    "two_room-break_stop-make_win-distr_obj": TwoRooms(**_RIGHT, break_win_rule=True,
                                                           distractor_rule_block=False),
    "two_room-make_you": MakeYou(),
    "two_room-make_you-make_win": MakeYou(break_win_rule=True),
    "two_room-make_wall_win": MakeWallWin(),
}


class _Builder:
    """A level under construction, with upstream's placement helpers and draw order."""

    def __init__(self, width: int, height: int, rng: np.random.RandomState):
        self.board = Board(width, height)
        self.rng = rng
        self.rules: dict[tuple[str, str], list[tuple[int, int]]] = {}

    def free_position(self, top=(0, 0), size=None, reject=None) -> tuple[int, int]:
        """A random empty cell in the rectangle, by rejection (x drawn, then y)."""
        board = self.board
        top = (max(top[0], 0), max(top[1], 0))
        size = size or (board.width, board.height)
        while True:
            x = int(self.rng.randint(top[0], min(top[0] + size[0], board.width)))
            y = int(self.rng.randint(top[1], min(top[1] + size[1], board.height)))
            if board.top(x, y) is None and not (reject and reject(x, y)):
                return x, y

    def place(self, thing: Thing, top=(0, 0), size=None) -> tuple[int, int]:
        x, y = self.free_position(top, size)
        self.board.put(x, y, thing)
        return x, y

    def put_rule(self, subject: str, complement: str, at: tuple[int, int]) -> None:
        """Three blocks from ``at`` rightwards: subject, "is", property (or object)."""
        positions = [(at[0] + i, at[1]) for i in range(3)]
        word = PROPERTY.get(complement)
        self.board.put(*positions[0], rule_object(subject))
        self.board.put(*positions[1], Thing("rule_is", word="is"))
        self.board.put(*positions[2], Thing("rule_property", word=word) if word
                       else rule_object(complement))
        self.rules[(subject, complement)] = positions

    def break_rule(self, rule: tuple[str, str], new_pos, block_index) -> None:
        """Move one block of ``rule`` away: to a drawn free cell (``new_pos`` a dict of
        top and size) or a given one; the block drawn from ``block_index`` if a list."""
        positions = self.rules[rule]
        if isinstance(new_pos, dict):
            new_pos = self.free_position(**new_pos)
        if isinstance(block_index, list):
            block_index = block_index[self.rng.choice(len(block_index))]
        x, y = positions[block_index]
        if (x, y) != tuple(new_pos):
            thing = self.board.lift(x, y)
            if thing is not None:
                self.board.put(*new_pos, thing)

    def sample_objects(self):
        names = self.rng.choice(len(NAMES), size=3, replace=False)
        colors = self.rng.choice(len(COLORS), size=3, replace=True)
        return [(COLORS[c], NAMES[n]) for n, c in zip(names, colors, strict=True)]


def rule_object(name: str) -> Thing:
    return Thing("rule_object", word=KIND[name])


def obj(color_name: tuple[str, str] | str) -> Thing:
    if isinstance(color_name, str):
        return Thing(KIND[color_name], DEFAULT_COLORS[KIND[color_name]])
    color, name = color_name
    return Thing(KIND[name], color)


def generate(task: str, rng: np.random.RandomState) -> tuple[Board, str]:
    """The level of ``task`` drawn from ``rng``, and upstream's target plan for it."""
    spec = TASKS[task]
    if isinstance(spec, SingleRoom):
        builder, plan = _single_room(spec, rng)
    elif isinstance(spec, TwoRooms):
        builder, plan = _two_rooms(spec, rng)
    elif isinstance(spec, MakeYou):
        builder, plan = _make_you(spec, rng)
    else:
        builder, plan = _make_wall_win(rng)
    builder.board.start()
    return builder.board, plan


def _single_room(spec: SingleRoom, rng) -> tuple[_Builder, str]:
    b = _Builder(8, 8, rng)
    b.board.add_boundary()
    obj1, obj2, obj3 = b.sample_objects()
    b.put_rule("baba", "you", (1, 6))
    win = obj1[1]
    b.put_rule(win, "win", (1, 1))
    if spec.break_win_rule:
        b.break_rule((win, "win"), {"top": (2, 2), "size": (4, 4)}, 0)
    if spec.distractor_rule_block:
        # Where the other object's name cannot be made part of a rule.
        spots = [(4, 6), (5, 6), (6, 6), (4, 1), (5, 1), (6, 1),
                 (6, 1), (6, 2), (6, 3), (6, 4), (6, 5), (6, 6)]
        at = spots[rng.choice(len(spots))]
        b.board.put(*at, rule_object(obj3[1] if spec.irrelevant_rule_distractor else obj2[1]))
    b.place(obj("baba"), top=(1, 2))
    b.place(obj(obj1), top=(1, 2))
    if spec.distractor_obj:
        b.place(obj(obj2), top=(1, 2))
    if spec.distractor_win_rule:
        b.put_rule(obj3[1], "win", (4, 4))
    rule = f"{win} is win"
    plan = f"make[{rule}], goto[{win}]" if spec.break_win_rule else f"goto[{win}]"
    return b, plan


def _areas(width: int, height: int, narrow: bool) -> dict:
    """upstream's named areas of the two-room layout (``narrow``: the make_you and
    make_wall_win levels' smaller pushable areas)."""
    pushable = (width // 2 - (3 if narrow else 2), height - 6)
    return {
        "left_pushable": {"top": (2, 3), "size": pushable},
        "right_pushable": {"top": (width // 2 + (2 if narrow else 1), 3), "size": pushable},
        "right_unpushable": [*[(width - 2, 2 + i) for i in range(height - 4)],
                             *[(width - 2 - i, height - 2) for i in range(width // 2 - 2)]],
        "left_anywhere": {"top": (1, 1), "size": (width // 2 - 2, height - 2)},
        "right_anywhere": {"top": (width // 2 + 1, 2), "size": (width // 2 - 2, height - 2)},
        "anywhere": {"top": (1, 2), "size": (width - 2, height - 2)},
    }


def _two_room_board(rng) -> _Builder:
    b = _Builder(13, 9, rng)
    b.board.add_boundary()
    for y in range(1, 8):  # the wall column dividing the rooms: wall objects
        b.board.put(13 // 2, y, obj("wall"))
    return b


def _two_rooms(spec: TwoRooms, rng) -> tuple[_Builder, str]:
    width, height = 13, 9
    b = _two_room_board(rng)
    areas = _areas(width, height, narrow=False)
    obj1, obj2, obj3 = b.sample_objects()
    b.put_rule("baba", "you", (1, height - 2))
    b.put_rule("wall", "stop", (1, 2))
    b.put_rule(obj1[1], "win", (width - 4, 1))
    if spec.distractor_rule_block:
        if spec.irrelevant_rule_distractor:
            b.place(rule_object(obj3[1]), **areas["right_pushable"])
        elif spec.distractor_obj:
            spots = areas["right_unpushable"]
            b.board.put(*spots[rng.choice(len(spots))], rule_object(obj2[1]))
        else:
            b.place(rule_object(obj2[1]), **areas["right_pushable"])
    if spec.break_stop_rule:
        b.break_rule(("wall", "stop"), areas["left_pushable"], [1, 2])
    if spec.break_win_rule:
        b.break_rule((obj1[1], "win"), areas["right_pushable"], 0)
    b.place(obj("baba"), **areas["left_pushable"])
    obj1_at = b.place(obj(obj1), **areas[spec.obj1_pos])
    if spec.distractor_obj:
        b.place(obj(obj2), **areas[spec.obj2_pos])
    if spec.distractor_win_rule:
        b.put_rule(obj3[1], "win", (width - 4, 4))
    name = obj1[1]
    on_left = obj1_at[0] < width // 2
    if not spec.break_win_rule:
        plan = (f"goto[{name}]" if on_left or spec.break_stop_rule
                else f"break[wall is stop], goto[{name}]")
    elif spec.break_stop_rule:
        plan = f"make[{name} is win], goto[{name}]"
    else:
        plan = f"break[wall is stop], make[{name} is win], goto[{name}]"
    return b, plan


def _make_you(spec: MakeYou, rng) -> tuple[_Builder, str]:
    width, height = 13, 9
    b = _two_room_board(rng)
    areas = _areas(width, height, narrow=True)
    obj1, obj2, _ = b.sample_objects()
    b.put_rule("baba", "you", (1, height - 3))
    b.put_rule("wall", "stop", (1, 1))
    b.put_rule(obj1[1], "win", (width - 4, 1))
    b.place(rule_object(obj2[1]), **areas["left_pushable"])
    if spec.break_win_rule:
        b.break_rule((obj1[1], "win"), areas["right_pushable"], 0)
    b.place(obj("baba"), **areas["left_pushable"])
    b.place(obj(obj1), **areas["right_anywhere"])
    b.place(obj(obj2), **areas["right_anywhere"])
    plan = f"make[{obj2[1]} is you], goto[{obj1[1]}]"
    if spec.break_win_rule:
        plan = f"make[{obj2[1]} is you], make[{obj1[1]} is win], goto[{obj1[1]}]"
    return b, plan


def _make_wall_win(rng) -> tuple[_Builder, str]:
    width, height = 13, 9
    b = _two_room_board(rng)
    areas = _areas(width, height, narrow=True)
    obj1, obj2, obj3 = b.sample_objects()
    b.put_rule("baba", "you", (1, height - 2))
    b.put_rule("wall", "stop", (2, 2))
    b.put_rule(obj1[1], "win", (width - 4, 1))
    b.place(rule_object(obj3[1]), **areas["right_pushable"])
    spots = areas["right_unpushable"]
    b.break_rule((obj1[1], "win"), spots[rng.choice(len(spots))], 0)
    b.place(obj("baba"), **areas["left_pushable"])
    b.place(obj(obj1), **areas["right_anywhere"])
    b.place(obj(obj2), **areas["right_anywhere"])
    return b, "break[wall is stop], make[wall is win], goto[wall]"
