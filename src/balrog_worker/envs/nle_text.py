"""NetHack's screen as language, and its keys as named actions (NetHack and MiniHack).

The description of the surroundings is written from NLE's ``screen_descriptions``: the
text NetHack's own ``;`` (farlook) command gives for every map cell. For each distinct
thing in sight the nearest instance is reported with its exact offset from the agent
("newt: 1 step north and 2 steps east"), so nothing is rounded away.
"""

from __future__ import annotations

import numpy as np
from nle.nethack import actions as nle_actions

# Directions as NetHack's map lays them out: rows grow southwards, columns eastwards.
_COMPASS = {"N": "north", "E": "east", "S": "south", "W": "west",
            "NE": "northeast", "SE": "southeast", "SW": "southwest", "NW": "northwest"}

_COMMANDS = {
    "adjust": "adjust inventory letters", "annotate": "name the current level",
    "apply": "apply (use) a tool, e.g. a key, a pick-axe or a horn",
    "attributes": "show your attributes", "autopickup": "toggle automatic picking up",
    "call": "give a name to a monster, an object or a type of object",
    "cast": "cast a known spell", "chat": "talk to someone next to you",
    "close": "close a door next to you", "conduct": "list the conducts you kept",
    "dip": "dip an object into something", "drop": "drop one item",
    "droptype": "drop several items by type", "eat": "eat something",
    "engrave": "write in the dust with a finger or an object (Elbereth scares monsters)",
    "enhance": "advance or check weapon and spell skills",
    "esc": "cancel the current prompt or menu",
    "extcmd": "start an extended command (#)", "extlist": "list extended commands",
    "fight": "fight a monster in a direction, even if you only guess one is there",
    "fire": "fire ammunition from your quiver", "force": "force a lock with your weapon",
    "glance": "describe what is shown at a map position", "history": "show the game's history",
    "inventory": "show your inventory", "inventtype": "show inventory items of one type",
    "invoke": "invoke the special power of an artifact", "jump": "jump to another position",
    "kick": "kick something (a door, an object, a monster)", "known": "list discovered objects",
    "knownclass": "list discovered objects of one class", "look": "look at what is here",
    "loot": "loot a box or bag on the floor", "monster": "use a monster's special ability",
    "move": "move one step without picking anything up or fighting",
    "movefar": "move far without picking anything up", "offer": "offer a sacrifice at an altar",
    "open": "open a door next to you", "options": "show or set the game options",
    "overview": "show an overview of the dungeon", "pay": "pay a shopkeeper",
    "pickup": "pick up what is here", "pray": "pray to your god for help",
    "puton": "put on a ring, amulet or blindfold", "quaff": "drink a potion or from a fountain",
    "quit": "quit the game (ends the episode)", "quiver": "choose the ammunition to fire",
    "read": "read a scroll, spellbook or something written",
    "redraw": "redraw the screen", "remove": "remove a ring, amulet or blindfold",
    "ride": "ride or dismount a saddled steed", "rub": "rub a lamp or a stone",
    "rush": "rush in a direction until something interesting",
    "rush2": "rush in a direction until something interesting",
    "save": "save the game (ends the episode)", "search": "search for hidden doors and traps",
    "seeall": "show all equipment in use", "seeamulet": "show the amulet worn",
    "seearmor": "show the armor worn", "seegold": "count your gold", "seerings": "show rings worn",
    "seespells": "list known spells", "seetools": "show tools in use",
    "seetrap": "show the type of an adjacent trap", "seeweapon": "show the weapon wielded",
    "shell": "no effect here", "sit": "sit down", "swap": "swap primary and secondary weapons",
    "takeoff": "take off one piece of armor", "takeoffall": "take off all armor",
    "teleport": "teleport (if you can)", "throw": "throw an object",
    "tip": "empty a container", "travel": "travel to a chosen map position",
    "turnundead": "turn undead (knights and priests)",
    "twoweapon": "toggle fighting with two weapons",
    "untrap": "disarm a trap", "version": "show the game version",
    "versionshort": "show the game version", "wear": "put on a piece of armor",
    "whatdoes": "tell what a key does", "whatis": "describe a map symbol",
    "wield": "wield a weapon", "wipe": "wipe your face", "zap": "zap a wand",
}
_CHARACTERS = {"PLUS": "+", "MINUS": "-", "SPACE": "space", "APOS": "'", "QUOTE": '"',
               "DOLLAR": "$", **{f"NUM_{d}": str(d) for d in range(10)}}


def action_name(action: nle_actions.enum.IntEnum) -> str:
    kind = type(action).__name__
    if kind == "CompassDirection":
        return _COMPASS[action.name]
    if kind == "CompassDirectionLonger":
        return f"far {_COMPASS[action.name]}"
    if kind == "TextCharacters":
        return _CHARACTERS[action.name]
    return action.name.lower()


def action_description(action: nle_actions.enum.IntEnum) -> str:
    kind = type(action).__name__
    name = action_name(action)
    if kind == "CompassDirection":
        return f"move one step {name}, or attack a monster there"
    if kind == "CompassDirectionLonger":
        return f"move {name[4:]} until something interesting is reached"
    if kind == "TextCharacters":
        return f"type '{name if name != 'space' else ' '}' (answers prompts and menus)"
    return {"up": "go up a staircase (<) you stand on",
            "down": "go down a staircase (>) you stand on",
            "wait": "rest one turn", "more": "read the next message (--More--)",
            }.get(name) or _COMMANDS.get(name, name)


# BALROG names NLE's actions as nle-language-wrapper does (the first name of each key).
# Where two of NLE's enums share a key, that map holds one entry for both: '+', '"' and
# '$' are named after the commands bound to them, as in BALROG's action list.
_BALROG_NAMES = {"turn": "turnundead", "+": "seespells", '"': "seeamulet", "$": "seegold"}

# BALROG's MiniHack action list (balrog/environments/minihack/__init__.py): a level offers
# those of its actions whose name is here, nothing else.
MINIHACK_ACTIONS = (
    "north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest",
    "far north", "far east", "far south", "far west", "far northeast", "far southeast",
    "far southwest", "far northwest", "up", "down", "wait", "more", "apply", "close", "open",
    "eat", "force", "kick", "loot", "pickup", "pray", "puton", "quaff", "search", "zap",
)


def balrog_name(action: nle_actions.enum.IntEnum) -> str:
    name = action_name(action)
    return _BALROG_NAMES.get(name, name)


def vocabulary(env_actions, minihack: bool = False) -> dict[str, tuple[int, str]]:
    """BALROG's action set: name -> (index in the env's action space, description).

    NetHack: the names of NLE's useful actions, then every letter a-z, A-Z and digit 0-9
    as a single key (answering prompts and menus: "What do you want to eat? [fg]" -> f),
    each pressing the env action bound to that key. MiniHack: the level's actions whose
    names are in BALROG's MiniHack list.
    """
    from nle.nethack import USEFUL_ACTIONS

    vocab: dict[str, tuple[int, str]] = {}
    for index, action in enumerate(env_actions):
        name = balrog_name(action)
        if minihack and name not in MINIHACK_ACTIONS:
            continue
        if not minihack and action not in USEFUL_ACTIONS:
            continue
        vocab.setdefault(name, (index, _COMMANDS.get(name) or action_description(action)))
    if minihack:
        return vocab
    by_key = {}
    for index, action in enumerate(env_actions):
        by_key.setdefault(chr(int(action)), index)
    keys = [*map(chr, range(ord("a"), ord("z") + 1)), *map(chr, range(ord("A"), ord("Z") + 1)),
            *map(str, range(10))]
    for key in keys:
        if key in by_key:
            vocab[key] = (by_key[key], f"type the key '{key}' (answers prompts and menus)")
    return vocab


def _steps(n: int, direction: str) -> str:
    return f"{n} step{'s' if n != 1 else ''} {direction}"


def offset_phrase(dx: int, dy: int) -> str:
    """'1 step north and 2 steps east' for a map offset (dy > 0 is south)."""
    parts = []
    if dy:
        parts.append(_steps(abs(dy), "south" if dy > 0 else "north"))
    if dx:
        parts.append(_steps(abs(dx), "east" if dx > 0 else "west"))
    return " and ".join(parts) or "here"


def decode(chars: np.ndarray) -> str:
    return bytes(chars).decode("latin-1").rstrip("\x00").strip()


def surroundings(descriptions: np.ndarray, x: int, y: int) -> list[str]:
    """The nearest instance of every distinct thing on the map, nearest first.

    ``descriptions`` is NLE's (rows, cols, 80) ``screen_descriptions``; the agent stands at
    column ``x``, row ``y``. Distance is counted in moves (NetHack moves diagonally too).
    """
    nearest: dict[str, tuple[int, int, int]] = {}
    rows, cols = np.nonzero(descriptions[:, :, 0])
    for row, col in zip(rows.tolist(), cols.tolist(), strict=True):
        if (col, row) == (x, y):
            continue
        text = decode(descriptions[row, col])
        dx, dy = col - x, row - y
        distance = max(abs(dx), abs(dy))
        if text not in nearest or (distance, dy, dx) < nearest[text]:
            nearest[text] = (distance, dy, dx)
    ordered = sorted(nearest.items(), key=lambda item: (item[1], item[0]))
    return [f"{text}: {offset_phrase(dx, dy)}" for text, (_, dy, dx) in ordered]


def inventory(letters: np.ndarray, strings: np.ndarray) -> list[str]:
    return [f"{chr(letter)}: {decode(text)}" for letter, text in zip(letters, strings,
                                                                      strict=True) if letter]


def screen(tty_chars: np.ndarray) -> str:
    return "\n".join(bytes(row).decode("latin-1").rstrip() for row in tty_chars)
