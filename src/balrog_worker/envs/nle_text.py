"""NetHack's observations as BALROG's text, and its keys as BALROG's named actions.

BALROG describes an NLE observation with nle-language-wrapper's compiled module, which
its NLE fork ``balrog-nle`` bundles as ``nle.nle_language_obsv``: the message, a
description of what surrounds the player ("tame kitten adjacent northeast"), what the
cursor is on, the status and the inventory. This module calls that same module and lays
its parts out as BALROG's NetHack wrapper does (``environments/nle/base.py``):

- text agents (BALROG's "hybrid" mode): the sections ``message``, ``language
  observation``, ``cursor`` (with the cursor's position) and ``map`` (the terminal
  without its message row) as long-term context, ``inventory`` as short-term context;
- vision agents (its "language" mode, when images are sent): ``message``, ``language
  observation`` and ``cursor``; ``statistics`` and ``inventory`` as short-term context.

Each section is its name, a colon, a line break, the text and a line break; sections are
joined by a line break. Tested line for line against BALROG's own output
(``tests/test_golden_nle.py``).
"""

from __future__ import annotations

from balrog_worker.envs.gym_legacy import gym  # noqa: F401 - first: gym's quiet import

# isort: split
import numpy as np
from nle import nle_language_obsv
from nle.language_wrapper.wrappers.nle_language_wrapper import NLELanguageWrapper
from nle.nethack import USEFUL_ACTIONS
from nle.nethack import actions as nle_actions

from balrog_worker.envs.base import Observation

# Every NLE action with its names: the first is the one BALROG shows, the others are the
# keys that also press it ("north", "k"); letters and digits are among them.
ACTION_NAMES: dict[nle_actions.enum.IntEnum, list[str]] = NLELanguageWrapper.all_nle_action_map

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
# BALROG's MiniHack action list (``environments/minihack/__init__.py``): a level offers
# those of its actions whose first name is here, nothing else.
MINIHACK_ACTIONS = (
    "north", "east", "south", "west", "northeast", "southeast", "southwest", "northwest",
    "far north", "far east", "far south", "far west", "far northeast", "far southeast",
    "far southwest", "far northwest", "up", "down", "wait", "more", "apply", "close", "open",
    "eat", "force", "kick", "loot", "pickup", "pray", "puton", "quaff", "search", "zap",
)
_MOVES = {"up": "go up a staircase (<) you stand on",
          "down": "go down a staircase (>) you stand on",
          "wait": "rest one turn", "more": "read the next message (--More--)",
          "space": "press the space bar (answers prompts and menus)"}
KEYS = (*map(chr, range(ord("a"), ord("z") + 1)), *map(chr, range(ord("A"), ord("Z") + 1)),
        *map(str, range(10)))


def describe(name: str) -> str:
    """A one-line description of the action ``name``, for the instructions."""
    if name.startswith("far "):
        return f"move {name[4:]} until something interesting is reached"
    if name in ("north", "east", "south", "west", "northeast", "southeast", "southwest",
                "northwest"):
        return f"move one step {name}, or attack a monster there"
    if len(name) == 1:
        return f"type the key '{name}' (answers prompts and menus)"
    return _MOVES.get(name) or _COMMANDS.get(name, name)


def vocabulary(env_actions, minihack: bool = False) -> dict[str, int]:
    """BALROG's valid actions of a game, each with the index in the env's action space of
    the key it presses.

    NetHack (its ``create_action_space``): the first name of every one of NLE's useful
    actions, then every letter a-z, A-Z and every digit 0-9 as a key (answering prompts
    and menus: "What do you want to eat? [fg]" -> f). BALROG also lists "00" to "99",
    which its wrapper cannot play (the episode would crash): they are left out.
    MiniHack: the level's actions whose first name is in BALROG's MiniHack list.
    """
    index_of: dict[str, int] = {}  # every name and key of the env's actions
    for action, names in ACTION_NAMES.items():
        if action in env_actions:
            for name in names:
                index_of[name] = env_actions.index(action)
    if minihack:
        names = [ACTION_NAMES.get(action, [None])[0] for action in env_actions]
        return {name: index_of[name] for name in names if name in MINIHACK_ACTIONS}
    names = [names[0] for action, names in ACTION_NAMES.items() if action in USEFUL_ACTIONS]
    # NetHackChallenge-v0 has every one; NLE's other tasks (NetHackScore-v0...) a subset.
    return {name: index_of[name] for name in [*names, *KEYS] if name in index_of}


class LanguageObserver:
    """BALROG's text of NLE observations (one per game: the module is not shared
    between threads)."""

    def __init__(self, vision: bool = False):
        self.vision = vision
        self._language = nle_language_obsv.NLELanguageObsv()

    def message(self, tty_chars: np.ndarray) -> str:
        """The message the terminal shows (its top line)."""
        return self._language.text_message(tty_chars).decode("latin-1")

    def observe(self, obs: dict, message: str) -> Observation:
        """BALROG's text of ``obs``, whose (joined) message is ``message``."""
        language = self._language
        glyphs, blstats = obs["glyphs"], obs["blstats"]
        cursor = language.text_cursor(glyphs, blstats, obs["tty_cursor"]).decode("latin-1")
        inventory = language.text_inventory(obs["inv_strs"], obs["inv_letters"]).decode(
            "latin-1")
        long_term = [("message", message),
                     ("language observation",
                      language.text_glyphs(glyphs, blstats).decode("latin-1"))]
        if self.vision:
            long_term.append(("cursor", cursor))
            short_term = [("statistics", language.text_blstats(blstats).decode("latin-1")),
                          ("inventory", inventory)]
        else:
            row, column = (int(v) for v in obs["tty_cursor"])
            long_term += [("cursor", f"{cursor}\n(x={column}, y={row})"),
                          ("map", screen_rows(obs["tty_chars"][1:]))]
            short_term = [("inventory", inventory)]
        return Observation(sections(long_term), sections(short_term))


def sections(parts: list[tuple[str, str]]) -> str:
    return "\n".join(f"{name}:\n{text}\n" for name, text in parts)


def screen_rows(tty_chars: np.ndarray) -> str:
    """Terminal rows as text, each ended by a line break (trailing blanks kept)."""
    return "".join(bytes(row).decode("latin-1") + "\n" for row in tty_chars)

