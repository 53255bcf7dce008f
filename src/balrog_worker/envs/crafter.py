"""Crafter as BALROG plays it: one open-ended survival episode, scored by achievements.

BALROG's Crafter (``balrog/environments/crafter``, its config: 64x64 world, 9x9 view,
``unique_items: True``, ``precise_location: False``) is reproduced step for step:

- the world is ``crafter.Env(area=(64, 64), view=(9, 9), size=(256, 256))`` with
  crafter's own length (10,000); reset plays one ``Noop`` before the first observation;
- each step renders one extra frame (BALROG's image), which at night draws noise from
  the world's generator, so the world evolves as BALROG's does. Those draws are all a
  text agent needs of the two renders a step makes (crafter's own and BALROG's), so they
  are made without drawing (``_draws_of_render``), and a frame is drawn only when one is
  asked for (a vision agent, the viewer, MOSAIC), from the generator as it stood at
  BALROG's render: the same pixels, and the world untouched;
- the text is BALROG's: the closest thing of each kind in a 9x7 window with its distance
  and compass direction, the cell faced, then status and inventory as short-term context.

Two reproducibility defects of BALROG's are not copied (see the golden README): the env
seed S builds ``crafter.Env(seed=S)`` (BALROG never passes its seed, so its worlds are
unrepeatable), and each map chunk keeps its creatures in insertion order (crafter's
``set`` orders them by memory address, so which creature despawns varied by process).
Tested against BALROG's own output (``tests/test_golden_crafter.py``).
"""

from __future__ import annotations

import collections

import crafter
import numpy as np
from crafter import constants

from balrog_worker.envs.base import Game, Observation, StepOutcome

AREA = (64, 64)
VIEW = (9, 9)
FRAME_SIZE = (256, 256)
# BALROG's text window: 9 columns by 7 rows around the player (its slicing of the map).
HALF_WIDTH, ROWS_NORTH, ROWS_SOUTH = 4, 3, 3

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

# The information of BALROG's action list, in our words.
ACTIONS = {
    "Noop": "do nothing",
    "Move West": "move west on flat ground",
    "Move East": "move east on flat ground",
    "Move North": "move north on flat ground",
    "Move South": "move south on flat ground",
    "Do": "act on what is in front of you: collect a material, drink from a lake, hit a "
          "creature",
    "Sleep": "sleep while your energy is below its maximum",
    "Place Stone": "put a stone in front of you",
    "Place Table": "put a table down",
    "Place Furnace": "put a furnace down",
    "Place Plant": "plant a sapling",
    "Make Wood Pickaxe": "craft a wood pickaxe; needs a table nearby and wood",
    "Make Stone Pickaxe": "craft a stone pickaxe; needs a table nearby, wood and stone",
    "Make Iron Pickaxe": "craft an iron pickaxe; needs a table and a furnace nearby, wood, "
                         "coal and iron",
    "Make Wood Sword": "craft a wood sword; needs a table nearby and wood",
    "Make Stone Sword": "craft a stone sword; needs a table nearby, wood and stone",
    "Make Iron Sword": "craft an iron sword; needs a table and a furnace nearby, wood, "
                       "coal and iron",
}
# BALROG's numbered list of the 22 achievements, in its order.
ACHIEVEMENTS = (
    "Collect Wood", "Place Table", "Eat Cow", "Collect Sapling", "Collect Drink",
    "Make Wood Pickaxe", "Make Wood Sword", "Place Plant", "Defeat Zombie", "Collect Stone",
    "Place Stone", "Eat Plant", "Defeat Skeleton", "Make Stone Pickaxe", "Make Stone Sword",
    "Wake Up", "Place Furnace", "Collect Coal", "Collect Iron", "Make Iron Pickaxe",
    "Make Iron Sword", "Collect Diamond",
)
assert sorted(a.lower().replace(" ", "_") for a in ACHIEVEMENTS) == sorted(
    constants.achievements)

VITALS = ("health", "food", "drink", "energy")


class InsertionOrderedSet:
    """A set that iterates in insertion order: what crafter's per-chunk ``set`` would be
    if objects did not hash by memory address."""

    def __init__(self):
        self._items: dict = {}

    def add(self, item) -> None:
        self._items[item] = None

    def remove(self, item) -> None:
        del self._items[item]

    def __iter__(self):
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item) -> bool:
        return item in self._items


def _ordered_chunks(world) -> None:
    """Make ``world`` keep every chunk's objects in insertion order from its next reset."""
    reset = world.reset

    def ordered_reset(seed=None):
        reset(seed=seed)
        world._chunks = collections.defaultdict(InsertionOrderedSet)

    world.reset = ordered_reset


def _semantic_names(env) -> dict[int, str]:
    """crafter's semantic ids -> BALROG's names: materials as crafter names them (id 0 is
    "None"), creatures by class name in lower case."""
    names = {index: str(name) for name, index in env._world._mat_ids.items()}
    names.update({index: cls.__name__.lower() for cls, index in env._sem_view._obj_ids.items()})
    return names


def _direction(dx: int, dy: int) -> str:
    """'7 steps to your north-west': moves to get there, compass words north/south first."""
    words = []
    if dy:
        words.append("north" if dy < 0 else "south")
    if dx:
        words.append("west" if dx < 0 else "east")
    distance = abs(dx) + abs(dy)
    return f"{distance} step{'s' if distance > 1 else ''} to your {'-'.join(words)}"


def describe_view(semantic: np.ndarray, pos, facing, names: dict[int, str]) -> str:
    """BALROG's long-term context (its ``describe_env`` with unique items, compass words).

    The window is sliced as BALROG slices it, so at the map's edge it behaves as BALROG's
    does; the closest of each kind wins, ties to the first met scanning west to east, then
    north to south within a column."""
    px, py = int(pos[0]), int(pos[1])
    if names[int(semantic[px, py])] != "player":
        raise ValueError("the player is not on the map")
    window = semantic[px - HALF_WIDTH: px + HALF_WIDTH + 1, py - ROWS_NORTH: py + ROWS_SOUTH + 1]
    centre = (HALF_WIDTH, ROWS_NORTH)
    tx, ty = centre[0] + int(facing[0]), centre[1] + int(facing[1])
    front = "nothing"
    if 0 <= tx < window.shape[0] and 0 <= ty < window.shape[1]:
        front = names[int(window[tx, ty])]
    closest: dict[str, tuple[int, str]] = {}
    for x in range(window.shape[0]):
        for y in range(window.shape[1]):
            name = names[int(window[x, y])]
            if name == "player":
                continue
            dx, dy = x - centre[0], y - centre[1]
            distance = abs(dx) + abs(dy)
            if name not in closest or distance < closest[name][0]:
                closest[name] = (distance, _direction(dx, dy))
    seen = ("You see:\n" + "\n".join(f"- {name} {where}" for name, (_, where) in closest.items())
            if closest else "You see nothing away from you.")
    return f"{seen}\n\nYou face {front} at your front."


def describe_frame(env) -> tuple[str, str]:
    """(long-term, short-term) context of BALROG's Crafter for the current state."""
    player = env._player
    status = ""
    if player.sleeping:
        status = "You are sleeping, and will not be able take actions until energy is full."
    elif player.health <= 0:
        status = "You died."
    try:
        view = describe_view(env._sem_view(), player.pos, player.facing, _semantic_names(env))
    except Exception:  # BALROG's fallback, kept for the same text in the same case
        view = "Error, you are out of the map."
    else:
        # BALROG joins the status and the view with two blank lines.
        view = f"{status}\n\n\n\n{view}" if status else view
    return view, describe_inventory(player.inventory)


def describe_inventory(inventory: dict[str, int]) -> str:
    vitals = "\n".join(f"- {name}: {inventory[name]}/9" for name in VITALS)
    items = [f"- {name}: {count}" for name, count in inventory.items()
             if name not in VITALS and count != 0]
    held = ("Your inventory:\n" + "\n".join(items)) if items else (
        "You have nothing in your inventory.")
    return f"Your status:\n{vitals}\n\n{held}"


def _draws_of_render(env: crafter.Env) -> None:
    """What ``env.render()`` draws from the world's generator, without drawing: at night
    (daylight under 0.5) its local view adds noise, one uniform draw per pixel of the
    view (crafter's ``LocalView._noise``). Nothing else in a render is random."""
    if env._world.daylight < 0.5:
        unit = np.array(env._size) // np.array(env._view)
        env._world.random.uniform(32, 127, tuple(env._local_view._grid * unit))


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
        # The information of BALROG's prompt: the game, the valid actions with a short
        # description, the 22 achievements, and the goal. No strategy advice.
        actions = "\n".join(f"{name}: {text}" for name, text in ACTIONS.items())
        achievements = "\n".join(f"{i}. {name}" for i, name in enumerate(ACHIEVEMENTS, 1))
        return (
            "You are an agent playing Crafter. These are the only valid actions, each with "
            f"what it does:\n\n{actions}\n\nThese are the achievements of the game:\n"
            f"{achievements}\n\nA history of actions and observations from the game will "
            "follow. Your goal is to get as far as you can by completing all the "
            "achievements.\n\nPLAY!"
        )

    def reset(self, seed: int) -> Observation:
        self.env = crafter.Env(area=AREA, view=VIEW, size=FRAME_SIZE, reward=True, seed=seed)
        _ordered_chunks(self.env._world)
        # crafter renders its image observation in every step and reset; nobody reads it.
        self.env._obs = lambda env=self.env: _draws_of_render(env)
        self.env.reset()
        self.env.step(ACTION_INDEX["Noop"])  # BALROG's reset plays one Noop
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        _, reward, done, _ = self.env.step(ACTION_INDEX[action])
        return StepOutcome(self._observe(), float(reward), bool(done), False)

    def unlocked(self) -> list[str]:
        """The achievements unlocked so far this episode, sorted by name."""
        return sorted(name for name, count in self.env._player.achievements.items() if count)

    def progression(self) -> float:
        return len(self.unlocked()) / len(constants.achievements)

    def frame(self) -> np.ndarray:
        """BALROG's image of the current step, drawn now (once) from the generator's state
        at the step's render, which is then put back as it is."""
        if self._frame is None:
            generator = self.env._world.random
            now = generator.get_state()
            generator.set_state(self._render_state)
            try:
                self._frame = self.env.render()
            finally:
                generator.set_state(now)
        return self._frame

    def episode_info(self) -> dict:
        return {"achievements": self.unlocked()}

    def _observe(self) -> Observation:
        # BALROG renders one frame per observation (its image); at night rendering draws
        # noise from the world's generator: those draws are made, the frame only if asked.
        self._render_state = self.env._world.random.get_state()
        self._frame = None
        _draws_of_render(self.env)
        long_term, short_term = describe_frame(self.env)
        return Observation(long_term, short_term)
