"""TextWorld as BALROG plays it: BALROG's own 75 games, chosen and shown as BALROG does.

BALROG plays a fixed set of 25 pre-generated games per task (``conglu1997/
intelligent-go-explore``, ``textworld/tw_games``; shipped with this package, see
``bundled``): ``treasure_hunter`` (TextWorld's treasure hunter, level 30),
``coin_collector`` (level 220, 60 rooms) and ``the_cooking_game`` (recipes of 5
ingredients in 12 rooms). For an episode seed S it plays game ``S % 25`` of the task's
sorted file list, on ``textworld`` 1.6.2 (1.7 cannot play the ``.ulx`` games) with an
80-command limit, and shows BALROG's text (``environments/textworld/base.py``), quirks
included:

- the game's text is cut at the objective, and only what follows it is shown: the
  opening text loses the banner and the objective, and the command ``goal``, whose
  answer is the objective, shows nothing;
- the cooking games (Z-machine files) show the interpreter's status line;
- a step's reward is TextWorld's score so far, not the points that step earned;
- an empty command is sent to the game as it is (valid: the game answers it);
- progression is set when the game ends: the better of score / max score and winning.

Tested against BALROG's own output (``tests/test_golden_textworld.py``).
"""

from __future__ import annotations

import textwrap
import threading
import warnings
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import numpy as np
import textworld
from PIL import Image, ImageDraw, ImageFont
from textworld.envs.wrappers import Filter, GenericEnvironment, Limit

from balrog_worker.envs import bundled
from balrog_worker.envs.base import Game, Observation, StepOutcome

MAX_COMMANDS = 80  # BALROG's textworld_kwargs.max_episode_steps

COMMANDS = (
    "Type one command per turn, in plain English, for example: look, inventory, "
    "go north (south, east, west), examine <thing>, open <door or container>, "
    "take <object>, take <object> from <container or supporter>, drop <object>, "
    "put <object> on <supporter>, insert <object> into <container>, "
    "unlock <door or container> with <key>, eat <food>."
)

# What each task asks, for the instructions (BALROG's information, our wording).
HINTS = {
    "treasure_hunter": (
        "You are in a maze of rooms and must find one particular object and take it. "
        "Doors and containers may be closed or locked: open them, and unlock a locked one "
        "with its matching key (the adjectives tell which key fits which lock; unlocking "
        "leaves it closed, so open it next). Keys may lie in other rooms or inside "
        "containers: take a key whenever you can. The object may be in a closed or locked "
        "container."
    ),
    "the_cooking_game": (
        "Find the cookbook and read its recipe (examine cookbook), then find the "
        "ingredients it lists and prepare them exactly as it says: slice, dice or chop an "
        "ingredient with a knife, both in your inventory (e.g. slice carrot with knife), "
        "before cooking it; cook it with the BBQ to grill it, the stove to fry it or the "
        "oven to roast it, the ingredient in your inventory and the tool in the room (e.g. "
        "cook carrot with stove). Cooking an ingredient the wrong way loses the game. Use "
        "the exact names you see; a colour in the recipe must match. With every "
        "ingredient ready, prepare meal in the kitchen, then eat meal."
    ),
    "coin_collector": (
        "You are in a maze of rooms and must find the coin: move from room to room with "
        "go <direction> through the exits you are told of, and take coin as soon as you "
        "see it. Nothing else needs doing."
    ),
}
TASKS = tuple(HINTS)

# BALROG's requested information (textworld_kwargs), and whether the game was lost.
INFOS = textworld.EnvInfos(objective=True, description=True, score=True, max_score=True,
                           won=True, lost=True)
# What the oracle and the random baseline read: the commands that do something now, and
# the winning policy. TextWorld derives them by tracking the game's state, which changes
# the game's text (blank lines where its trace tags were cut out), so they come from a
# second copy of the game that plays the same commands (see ``TextWorldGame._tracked``).
TRACKED_INFOS = textworld.EnvInfos(admissible_commands=True, policy_commands=True)

# TextWorld parses its grammar and logic files with tatsu, which is not thread-safe: two
# episodes loading a game at once failed with "pop from empty list".
_PARSING = threading.Lock()


def game_file(task: str, seed: int) -> Path:
    """BALROG's game of ``task`` for the episode seed ``seed``."""
    games = bundled.textworld_games(task)
    return games[int(seed) % len(games)]


def cut_at_objective(text: str, objective: str) -> str:
    """BALROG's text: what follows the last occurrence of the objective (the whole text
    without one), stripped."""
    return text.split(objective)[-1].strip()


class TextWorldGame(Game):
    family = "textworld"
    default_action = "help"  # BALROG's (never played: any command is valid)

    def __init__(self, task: str, vision: bool = False):
        if task not in HINTS:
            raise ValueError(f"unknown TextWorld task {task!r}; choose from {', '.join(TASKS)}")
        self.task = task
        self.env = None
        self._path: Path | None = None
        self._infos: dict | None = None  # TextWorld's information after the last command
        self._done = False
        self._text = ""
        self._commands: list[str] = []  # played since the reset
        self._tracker = None  # the second copy of the game, made when first asked for
        self._tracker_infos: dict | None = None

    @property
    def actions(self) -> dict[str, str]:
        """The commands TextWorld knows to do something now. Any other command may be typed
        too (see ``is_valid``); this list is for agents that want to choose from one."""
        commands = self._tracked()["admissible_commands"] if self._infos else None
        return dict.fromkeys(commands or ("look", "inventory"), "")

    def is_valid(self, action: str) -> bool:
        return True  # BALROG's TextWorld accepts any text, the empty command included

    def instructions(self) -> str:
        # As in BALROG's prompts, the task's kind and rules but not this game's objective,
        # which its text never shows.
        return (
            "You are playing TextWorld, a text adventure game. Each turn the game describes "
            f"what happens and you answer with a command.\n\n{HINTS[self.task]}\n\n"
            f"{COMMANDS} You have {MAX_COMMANDS} commands at most; restarting is not allowed."
        )

    def reset(self, seed: int) -> Observation:
        path = game_file(self.task, seed)
        if path != self._path:
            self.close()
            self.env, self._path = _load(path, INFOS), path
        with _quiet_jericho():
            text, self._infos = self.env.reset()
        self._done = False
        self._text = cut_at_objective(text, self._infos["objective"])
        self._commands = []
        if self._tracker is not None:
            self._tracker_infos = self._tracker.reset()[1]
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        if self._done:  # the game is over: nothing more can happen
            return StepOutcome(self._observe(), 0.0, True, False)
        with _quiet_jericho():
            text, score, done, self._infos = self.env.step(action)
            if self._tracker is not None:
                self._tracker_infos = self._tracker.step(action)[3]
        self._commands.append(action)
        self._done = bool(done)
        self._text = cut_at_objective(text, self._infos["objective"])
        return StepOutcome(self._observe(), float(score), self._done, False)

    def _tracked(self) -> dict:
        """TextWorld's tracked information now, from the second copy of the game (made on
        first use, and brought to the same point by the commands played so far)."""
        if self._tracker is None:
            self._tracker = _load(self._path, TRACKED_INFOS)
            with _quiet_jericho():
                self._tracker_infos = self._tracker.reset()[1]
                for command in self._commands:
                    self._tracker_infos = self._tracker.step(command)[3]
        return self._tracker_infos

    def progression(self) -> float:
        """BALROG's rule: set when the game ends, to the better of the score fraction and
        winning (1); a game still running when the step cap stops it scores 0."""
        if self._infos is None or not self._done:
            return 0.0
        fraction = self._infos["score"] / self._infos["max_score"]
        return max(fraction, 1.0 if self._infos["won"] else 0.0)

    def oracle_action(self) -> str:
        """The first command of TextWorld's winning policy from the current state; TextWorld
        replans it after every command, so it adapts to any detour the agent took."""
        policy = self._tracked()["policy_commands"] if self._infos else None
        return policy[0] if policy else self.default_action

    def episode_info(self) -> dict:
        infos = self._infos or {}
        return {
            "game": f"{self.task}/{self._path.name}" if self._path else None,
            "score": infos.get("score", 0),
            "max_score": infos.get("max_score", 0),
            "won": bool(infos.get("won", False)),
            "lost": bool(infos.get("lost", False)),
        }

    def frame(self) -> np.ndarray:
        """TextWorld has no pixels: the last observation printed on a page."""
        return render_text(self._observe().text)

    def close(self) -> None:
        for env in (self.env, self._tracker):
            if env is not None:
                env.close()
        self.env = self._tracker = None
        self._path = None

    def _observe(self) -> Observation:
        # BALROG's TextWorld has no short-term context: the game's text is all there is.
        return Observation(self._text)


def _load(path: Path, infos: textworld.EnvInfos):
    """The game at ``path`` as BALROG's factory makes it (TextWorld's gym env: its generic
    environment, a limit of 80 commands, the requested information)."""
    with _PARSING, _quiet_jericho():
        env = Filter(Limit(GenericEnvironment(infos), max_episode_steps=MAX_COMMANDS))
        env.load(str(path))
    return env


@contextmanager
def _quiet_jericho():
    """Silence Jericho's warnings: it cannot list the valid commands of a TextWorld game
    (TextWorld lists them itself, from its own model of the game)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", module=r"jericho\.")
        yield


FRAME_SIZE = (768, 512)  # width, height
_MARGIN, _LINE_HEIGHT, _WRAP = 12, 18, 108


@cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=14)


def render_text(text: str) -> np.ndarray:
    """``text`` in black on a white RGB page; lines that do not fit are cut off."""
    image = Image.new("RGB", FRAME_SIZE, "white")
    draw = ImageDraw.Draw(image)
    y = _MARGIN
    for paragraph in text.splitlines():
        for line in textwrap.wrap(paragraph, _WRAP) or [""]:
            if y + _LINE_HEIGHT > FRAME_SIZE[1] - _MARGIN:
                return np.array(image)
            draw.text((_MARGIN, y), line, fill="black", font=_font())
            y += _LINE_HEIGHT
    return np.array(image)
