"""The rules engine of Baba Is AI (Cloos et al., 2024, arXiv:2407.13729), written from the
behaviour of the upstream ``baba`` package (github.com/nacloos/baba-is-ai at ad466e0).

The board is a grid of cells, each a stack of things; only the top thing of a cell counts
for rules, movement and text, as upstream. Things are the map's boundary walls, the
objects (baba, ball, wall, door, key), whose properties come from the active rules, and
rule blocks (an object's name, "is", a property), which can always be pushed. Rules are
read from the blocks each step: "X is P" in a row, left to right, or a column, top to
bottom. "X is Y" between two objects turns every X into a Y (stacked on the old one).

A step moves every YOU object one cell in the chosen direction, pushing chains of
pushable things, stopped by what cannot be entered (boundary walls, rule blocks, STOP
objects). Win and loss are judged from where the last YOU object moved to, with the rules
as they were before the step; the rules are then read again. A win pays
1 - 0.9 * steps / max_steps; a loss -1. This covers what BALROG's 40 tasks use (you, win,
stop, push, and object transformations); colour rules are not supported.
"""

from __future__ import annotations

from collections import defaultdict
from typing import NamedTuple

# Upstream's internal names: objects carry an "f" prefix except baba.
OBJECTS = ("fball", "fwall", "fdoor", "fkey", "baba")
PROPERTIES = ("is_stop", "is_push", "is_goal", "is_defeat", "is_agent", "is_pull", "is_move",
              "is_open", "is_shut")
DISPLAY = {"fwall": "wall", "fball": "ball", "fdoor": "door", "fkey": "key", "baba": "baba",
           "is_push": "push", "is_stop": "stop", "is_goal": "win", "is_defeat": "lose",
           "is": "is", "is_agent": "you", "is_pull": "pull", "is_move": "move",
           "is_open": "open", "is_shut": "shut"}
DEFAULT_COLORS = {"fball": "green", "fwall": "grey", "fdoor": "red", "fkey": "blue",
                  "baba": "white"}
# Actions, in upstream's order, and the direction each moves (dx, dy); y grows downwards.
ACTIONS = ("idle", "up", "right", "down", "left")
DIRECTIONS = {"right": (1, 0), "down": (0, 1), "left": (-1, 0), "up": (0, -1)}


class Thing(NamedTuple):
    """A boundary wall (kind "wall"), an object (kind in OBJECTS) or a rule block (kind
    rule_object, rule_is or rule_property, with its ``word``). Immutable, so boards can
    share things (the solver copies boards by their stacks only)."""

    kind: str
    color: str = "purple"
    word: str | None = None  # rule blocks: the object or property they name

    @property
    def is_rule(self) -> bool:
        return self.kind.startswith("rule_")


Ruleset = dict  # property -> {object: True}, "_rule_": [rules], "replace": [(x, y)]


def read_rules(board: Board) -> Ruleset:
    """The active rules, read as upstream reads them: every "is" block, in row-major
    order, with its horizontal then its vertical neighbours."""
    rules: Ruleset = defaultdict(dict)
    for y in range(board.height):
        for x in range(board.width):
            block = board.top(x, y)
            if block is None or block.kind != "rule_is":
                continue
            for (ax, ay), (bx, by) in (((x - 1, y), (x + 1, y)), ((x, y - 1), (x, y + 1))):
                if board.inside(ax, ay) and board.inside(bx, by):
                    _add_rule(board.top(ax, ay), board.top(bx, by), rules)
    return rules


def _add_rule(subject: Thing | None, complement: Thing | None, rules: Ruleset) -> None:
    if subject is None or complement is None or subject.kind != "rule_object":
        return
    if complement.kind == "rule_property":
        rules.setdefault("_rule_", []).append({"object": subject.word,
                                               "property": complement.word})
        rules[complement.word][subject.word] = True
    elif complement.kind == "rule_object":
        rules.setdefault("_rule_", []).append({"object1": subject.word,
                                               "object2": complement.word})
        rules.setdefault("replace", []).append((subject.word, complement.word))


class Board:
    """A Baba Is AI level: the grid of stacks, the rules, and the step dynamics."""

    def __init__(self, width: int, height: int, max_steps: int = 100):
        self.width, self.height, self.max_steps = width, height, max_steps
        self.cells: list[list[Thing]] = [[] for _ in range(width * height)]
        self.rules: Ruleset = defaultdict(dict)
        self.step_count = 0
        self.direction = "right"
        self.won = self.lost = False

    # --- the grid -------------------------------------------------------------------
    def inside(self, x: int, y: int) -> bool:
        return 0 <= x < self.width and 0 <= y < self.height

    def top(self, x: int, y: int) -> Thing | None:
        stack = self.cells[y * self.width + x]
        return stack[-1] if stack else None

    def put(self, x: int, y: int, thing: Thing) -> None:
        self.cells[y * self.width + x].append(thing)

    def lift(self, x: int, y: int) -> Thing | None:
        stack = self.cells[y * self.width + x]
        return stack.pop() if stack else None

    def add_boundary(self) -> None:
        for x in range(self.width):
            for y in range(self.height):
                if x in (0, self.width - 1) or y in (0, self.height - 1):
                    self.put(x, y, Thing("wall", "grey"))

    def start(self) -> None:
        """Read the rules of a freshly built level."""
        self.rules = read_rules(self)
        self.step_count = 0
        self.won = self.lost = False

    # --- properties -----------------------------------------------------------------
    def has(self, thing: Thing | None, prop: str) -> bool:
        if thing is None or thing.kind not in OBJECTS:
            return False
        return bool(self.rules.get(prop, {}).get(thing.kind, False))

    def pushable(self, thing: Thing | None) -> bool:
        return thing is not None and (thing.is_rule or self.has(thing, "is_push"))

    def enterable(self, thing: Thing | None) -> bool:
        """Can a moving thing enter a cell whose top is ``thing``?"""
        if thing is None:
            return True
        return thing.kind in OBJECTS and not self.has(thing, "is_stop")

    def you(self) -> str | None:
        """The object named YOU by the last YOU rule (BALROG's wrapper reads it so)."""
        named = None
        for rule in self.rules.get("_rule_", []):
            if rule.get("property") == "is_agent":
                named = rule["object"]
        return named

    # --- dynamics -------------------------------------------------------------------
    def _move(self, x: int, y: int, dx: int, dy: int) -> tuple[tuple[int, int], bool, bool]:
        """Move the top thing of (x, y) by (dx, dy), pushing what is in front; where it
        ended, and whether that cell was a win or a loss for it."""
        fx, fy = x + dx, y + dy
        mover, front = self.top(x, y), self.top(fx, fy)
        if (self.has(mover, "is_open") and self.has(front, "is_shut")) or (
                self.has(mover, "is_shut") and self.has(front, "is_open")):
            self.lift(x, y)
            self.lift(fx, fy)
        if self.pushable(self.top(fx, fy)):
            self._move(fx, fy, dx, dy)
        target = (fx, fy) if self.enterable(self.top(fx, fy)) else (x, y)
        arrived = self.top(*target)
        win, loss = self.has(arrived, "is_goal"), self.has(arrived, "is_defeat")
        if target != (x, y):
            thing = self.lift(x, y)
            if thing is not None:
                self.put(*target, thing)
        bx, by = x - dx, y - dy
        if self.inside(bx, by) and self.has(self.top(bx, by), "is_pull"):
            self._move(bx, by, dx, dy)
        return target, win, loss

    def step(self, action: str) -> tuple[float, bool]:
        """Play ``action``; the reward and whether the episode is over."""
        self.step_count += 1
        reward, done = 0.0, False
        if action != "idle":
            self.direction = action
            dx, dy = DIRECTIONS[action]
            # Each YOU object moves once, scanning row-major over the grid as it changes:
            # one that moved right or down is met again and skipped (upstream's "moved"
            # flag). Identity, not equality: two babas are two objects.
            moved: set[int] = set()
            win = loss = False
            for index in range(len(self.cells)):
                thing = self.cells[index][-1] if self.cells[index] else None
                if self.has(thing, "is_agent") and id(thing) not in moved:
                    _, win, loss = self._move(index % self.width, index // self.width, dx, dy)
                    moved.add(id(thing))
            self.won, self.lost = win, loss
            if win:
                reward, done = 1 - 0.9 * (self.step_count / self.max_steps), True
            elif loss:
                reward, done = -1.0, True
            self.rules = read_rules(self)
            for old, new in self.rules.get("replace", []):
                self._replace(old, new)
        if self.step_count >= self.max_steps:
            done = True
        return reward, done

    def _replace(self, old: str, new: str) -> None:
        for stack in self.cells:
            if stack and stack[-1].kind == old:
                stack.append(Thing(new, DEFAULT_COLORS[new]))

    # --- BALROG's text --------------------------------------------------------------
    def active_rules_text(self) -> str:
        lines = [f"{rule['object'].removeprefix('f')} is {DISPLAY[rule['property']]}"
                 for rule in self.rules.get("_rule_", []) if "object" in rule]
        return "\n".join(lines)

    def _positions(self, kinds: tuple[str, ...]) -> list[tuple[tuple[int, int], str]]:
        found = []
        for y in range(self.height):
            for x in range(self.width):
                thing = self.top(x, y)
                if thing is None or thing.kind not in kinds:
                    continue
                if thing.kind == "rule_object" or thing.kind == "rule_property":
                    name = f"rule `{DISPLAY[thing.word]}`"
                elif thing.kind == "rule_is":
                    name = "rule `is`"
                else:
                    name = thing.kind
                found.append(((x, y), name))
        return found

    def objects_text(self) -> str | None:
        """BALROG's list of things with their offsets from the YOU object, or None when
        no object is YOU."""
        you = self.you()
        mine = self._positions((you,)) if you else []
        if not mine:
            return None
        (mx, my), _ = mine[0]
        lines = []
        for (x, y), name in self._positions(("fball", "fwall", "fdoor", "fkey", "rule_object",
                                              "rule_is", "rule_property")):
            dx, dy = x - mx, y - my
            # BALROG's wrapper says "step" for every negative offset (its sign test).
            horizontal = (f"{dx} {'steps' if dx > 1 else 'step'} to the right" if dx > 0 else
                          f"{-dx} step to the left" if dx < 0 else "")
            vertical = (f"{dy} {'steps' if dy > 1 else 'step'} down" if dy > 0 else
                        f"{-dy} step up" if dy < 0 else "")
            name = name.removeprefix("f")
            line = f"{name} {horizontal}" if horizontal else ""
            if vertical:
                line = f"{line} and {vertical}" if horizontal else f"{name} {vertical}"
            lines.append(line)  # empty for a listed kind that is YOU itself
        return "\n".join(lines)

    def text(self) -> str:
        objects = self.objects_text()
        return (f"Active rules:\n{self.active_rules_text()}\n\n"
                f"Objects on the map:\n{objects if objects is not None else ''}")


def board_from_state(state: dict) -> Board:
    """A board from an initial state as the golden traces record it: the size, the max
    steps, and every non-boundary thing with its position."""
    board = Board(state["grid_width"], state["grid_height"], state.get("max_steps", 100))
    board.add_boundary()
    for item in state["objects"]:
        if item["type"].startswith("rule_"):
            thing = Thing(item["type"], item["color"], word=item["word"])
        else:
            thing = Thing(item["type"], item["color"])
        board.put(item["x"], item["y"], thing)
    board.start()
    return board
