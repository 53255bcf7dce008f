"""Crafter as BALROG plays it: one open-ended survival episode, scored by achievements.

The world is 64x64 cells and the agent sees 9x9 cells of picture, of which the bottom two
rows show the inventory: its view of the world is 9 cells wide and 7 tall, centred on it.
The text is written from crafter's true world state (materials and creatures), not from
pixels, so it holds at night and while asleep, when the picture is dark.

Each reset builds a new ``crafter.Env`` seeded with the episode seed, as BALROG does:
crafter derives each world from its constructor seed and a count of resets, so one env
reset twice would give two worlds for one seed. The episode length is left uncapped here
(``length=None``), so ``done`` means death only; the harness applies BALROG's step cap.
"""

from __future__ import annotations

import math

import crafter
import numpy as np
from crafter import constants

from balrog_worker.envs.base import Game, Observation, StepOutcome

AREA = (64, 64)
VIEW = (9, 9)
# BALROG's frame size; crafter draws every step at this size whether or not it is used.
FRAME_SIZE = (256, 256)
# crafter gives the bottom rows of its view to the inventory, one icon per item.
ITEM_ROWS = math.ceil(len(constants.items) / VIEW[0])
LOCAL_VIEW = (VIEW[0], VIEW[1] - ITEM_ROWS)  # (width, height) in cells: 9 x 7

# BALROG's action names -> crafter's, in crafter's order (so the index is the position).
CRAFTER_NAMES = {
    "Noop": "noop", "Move West": "move_left", "Move East": "move_right",
    "Move North": "move_up", "Move South": "move_down", "Do": "do", "Sleep": "sleep",
    "Place Stone": "place_stone", "Place Table": "place_table",
    "Place Furnace": "place_furnace", "Place Plant": "place_plant",
    "Make Wood Pickaxe": "make_wood_pickaxe", "Make Stone Pickaxe": "make_stone_pickaxe",
    "Make Iron Pickaxe": "make_iron_pickaxe", "Make Wood Sword": "make_wood_sword",
    "Make Stone Sword": "make_stone_sword", "Make Iron Sword": "make_iron_sword",
}
ACTION_INDEX = {name: constants.actions.index(crafter_name)
                for name, crafter_name in CRAFTER_NAMES.items()}
assert list(ACTION_INDEX.values()) == list(range(len(constants.actions)))


def _listing(words: list[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} {last} {words[-1]}"


def _costs(uses: dict[str, int]) -> str:
    return _listing([f"{count} {item.replace('_', ' ')}" for item, count in uses.items()])


def _describe(crafter_name: str) -> str:
    """One line per action. What placing and making cost is read from crafter's own rule
    table, so the prompt cannot drift from the game."""
    walk = _listing(constants.walkable, "or")
    if crafter_name.startswith("move_"):
        direction = {"left": "west", "right": "east", "up": "north", "down": "south"}[
            crafter_name.removeprefix("move_")]
        return f"face {direction} and step one cell {direction} if that cell is {walk}"
    if crafter_name.startswith("place_"):
        rule = constants.place[crafter_name.removeprefix("place_")]
        what = {"place_stone": "put a block of stone", "place_table": "build a table",
                "place_furnace": "build a furnace", "place_plant": "plant a sapling"}
        return (f"{what[crafter_name]} on the cell you face if it is "
                f"{_listing(rule['where'], 'or')}; uses {_costs(rule['uses'])}")
    if crafter_name.startswith("make_"):
        rule = constants.make[crafter_name.removeprefix("make_")]
        return f"needs a nearby {_listing(rule['nearby'])}; uses {_costs(rule['uses'])}"
    return {
        "noop": "do nothing this turn",
        "do": "act on the cell you face: collect a material, drink water, hit a creature, "
              "eat a ripe plant",
        "sleep": "sleep to restore energy; you wake up when it is full or when you are hurt",
    }[crafter_name]


ACTIONS = {name: _describe(crafter_name) for name, crafter_name in CRAFTER_NAMES.items()}

STATUS = ("health", "food", "drink", "energy")
# Compass names of crafter's unit vectors: arrays are indexed [x, y], x grows east and y
# grows south (crafter's "move_up" is (0, -1)).
FACING = {(-1, 0): "west", (1, 0): "east", (0, -1): "north", (0, 1): "south"}


def kind_at(world, pos) -> str | None:
    """What stands at ``pos``: a creature or plant if there is one, else the material;
    None outside the world. A cow on grass reads as a cow, as in crafter's semantic map."""
    material, obj = world[pos]
    if obj is None:
        return material
    name = type(obj).__name__.lower()
    return "ripe plant" if name == "plant" and obj.ripe else name


def visible(env) -> list[tuple[str, int, int]]:
    """(kind, dx, dy) for every cell of the agent's view but its own, dx east, dy south."""
    px, py = (int(v) for v in env._player.pos)
    half_w, half_h = LOCAL_VIEW[0] // 2, LOCAL_VIEW[1] // 2
    cells = []
    for dx in range(-half_w, half_w + 1):
        for dy in range(-half_h, half_h + 1):
            kind = kind_at(env._world, (px + dx, py + dy)) if (dx, dy) != (0, 0) else None
            if kind is not None:
                cells.append((kind, dx, dy))
    return cells


def closest(cells: list[tuple[str, int, int]]) -> list[tuple[str, int, int]]:
    """The closest cell of each kind, nearest first. Distance is the number of moves,
    |dx| + |dy|; ties go to the northmost, then westmost cell, so the text is stable."""
    best: dict[str, tuple[str, int, int]] = {}
    for kind, dx, dy in sorted(cells, key=lambda c: (abs(c[1]) + abs(c[2]), c[2], c[1])):
        best.setdefault(kind, (kind, dx, dy))
    return list(best.values())


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def offset_phrase(dx: int, dy: int) -> str:
    """'2 steps north and 3 steps west': the moves to get there, north/south first."""
    parts = []
    if dy:
        parts.append(_steps(abs(dy), "north" if dy < 0 else "south"))
    if dx:
        parts.append(_steps(abs(dx), "west" if dx < 0 else "east"))
    return " and ".join(parts)


def describe_view(env) -> str:
    """The long-term text: the closest thing of each kind in view, then what the agent faces."""
    lines = [f"- {kind} {offset_phrase(dx, dy)}" for kind, dx, dy in closest(visible(env))]
    player = env._player
    facing = tuple(int(v) for v in player.facing)
    front = kind_at(env._world, (int(player.pos[0]) + facing[0], int(player.pos[1]) + facing[1]))
    front = front or "the edge of the world"
    return ("You see (the closest of each kind):\n" + "\n".join(lines)
            + f"\nYou face {FACING[facing]}; in front of you is {front}.")


def describe_status(player) -> str:
    """The short-term text: vital statistics, inventory, sleep."""
    status = ", ".join(f"{name} {player.inventory[name]}/{constants.items[name]['max']}"
                       for name in STATUS)
    items = [f"{name.replace('_', ' ')} {count}" for name, count in player.inventory.items()
             if name not in STATUS and count > 0]
    lines = [f"Status: {status}.", f"Inventory: {', '.join(items) if items else 'empty'}."]
    if player.sleeping:
        lines.append("You are asleep.")
    return "\n".join(lines)


class CrafterGame(Game):
    family = "crafter"
    default_action = "Noop"

    def __init__(self, task: str):
        if task != "default":
            raise ValueError(f"unknown Crafter task {task!r}; choose from default")
        self.task = task
        self.env: crafter.Env | None = None
        self._frame: np.ndarray | None = None

    @property
    def actions(self) -> dict[str, str]:
        return dict(ACTIONS)

    def instructions(self) -> str:
        actions = "\n".join(f"- {name}: {text}" for name, text in self.actions.items())
        achievements = ", ".join(name.replace("_", " ") for name in constants.achievements)
        return (
            "You are a player in Crafter, a two-dimensional survival world seen from above, "
            "made of cells of grass, sand, trees, water, stone, coal, iron, diamond, lava and "
            "more. North is up, south down, west left and east right. Each turn you are told "
            "the closest thing of each kind in your view "
            f"({LOCAL_VIEW[0]} cells wide, {LOCAL_VIEW[1]} tall, centred on you) and how "
            "many steps north or south and east or west it is, then the cell "
            "you face: the cell next to you in the direction you last moved or tried to move. "
            "Moving towards a cell you cannot enter only turns you to face it.\n\n"
            "Stay alive: health (out of 9) slowly comes back while food, drink and energy "
            "are above zero, and falls while any of them is zero, or when zombies (on grass, "
            "more at night), skeletons (in caves and tunnels) or their arrows hit you. "
            "Walking into lava kills you. Eat cows (hit them until they die) or ripe plants, "
            "drink from water, and sleep when your energy is low: while asleep your actions "
            "are ignored until energy is full or you are hurt, and zombies hit harder, so "
            "wall yourself in first.\n\n"
            "The Do action works on the cell you face: on a tree it collects wood, on stone "
            "or coal it needs a wood pickaxe, on iron a stone pickaxe, on diamond an iron "
            "pickaxe; on water you drink; on a creature you attack it; on grass you may find "
            "a sapling. Tools are made standing near a table (any of the 8 cells around you), "
            "iron tools near a table and a furnace.\n\n"
            f"Goal: survive and unlock as many of the {len(constants.achievements)} "
            f"achievements as you can: {achievements}.\n\n"
            f"The actions you can take:\n{actions}"
        )

    def reset(self, seed: int) -> Observation:
        self.env = crafter.Env(area=AREA, view=VIEW, size=FRAME_SIZE, reward=True,
                               length=None, seed=seed)
        self._frame = self.env.reset()
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        self._frame, reward, done, _ = self.env.step(ACTION_INDEX[action])
        return StepOutcome(self._observe(), float(reward), bool(done), False)

    def unlocked(self) -> list[str]:
        """The achievements unlocked so far this episode, sorted by name."""
        return sorted(name for name, count in self.env._player.achievements.items() if count)

    def progression(self) -> float:
        return len(self.unlocked()) / len(constants.achievements)

    def frame(self) -> np.ndarray:
        # The frame crafter drew for this step: rendering again would draw fresh night
        # noise from the world's random generator and so change the rest of the episode.
        return self._frame

    def episode_info(self) -> dict:
        return {"achievements": self.unlocked()}

    def _observe(self) -> Observation:
        return Observation(describe_view(self.env), describe_status(self.env._player))
