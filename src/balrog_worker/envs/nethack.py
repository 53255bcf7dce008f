"""NetHack (NLE's NetHackChallenge-v0) as BALROG plays it, on BALROG's NLE fork.

BALROG runs ``balrog-nle`` 0.9, its fork of NLE, whose NetHack re-seeds its generators
around every level generation so that a seed fixes the dungeon (with NLE 1.x the same
seed gives the same character in another dungeon). This module plays that game with
BALROG's settings and protocol (``environments/nle/``, ``config/config.yaml``):

- seeding: NetHack's core generator from the episode seed S, its display generator from
  ``derive_seed("nle-display", S)`` (BALROG leaves it to the system's randomness, which
  cannot be repeated; it changes nothing an agent sees), no reseeding;
- ``skip_more``: while the message asks for --More--, the key is pressed within the same
  step, the messages joined and the rewards added;
- BALROG's text and action names (``nle_text``), its default action (``esc``);
- an episode ends on NetHack's own end or NLE's abort (no progress for 150 steps, or
  100,000 steps), the abort counting as truncation;
- progression: the largest human-play win rate (``data/nle_progression.json``) over the
  dungeon levels and experience levels reached after each step.

Tested line for line against BALROG's own output (``tests/test_golden_nle.py``).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import threading
from collections.abc import Callable

from balrog_worker.envs.gym_legacy import gym  # first: gym's quiet import

# isort: split
import numpy as np
from nle import nethack
from nle.env.base import NLE

from balrog_worker.envs import nle_text
from balrog_worker.envs.base import Game, Observation, StepOutcome
from balrog_worker.seeding import derive_seed

# BALROG's NetHack settings (its config.yaml, nle_kwargs): a random role ("@"), 100,000
# steps, an episode aborted after 150 steps without progress (NLE's default is 10,000),
# no recordings.
NETHACK_SETTINGS = {"character": "@", "max_episode_steps": 100_000,
                    "no_progress_timeout": 150, "savedir": None, "save_ttyrec_every": 0}


# Two NLE envs built at once in two threads deadlocked (both inside NLE's constructor,
# one of them in an import numpy makes from there): episodes build them one at a time.
_BUILDING = threading.Lock()


def build(make: Callable[[], object]):
    """``make()``, an NLE env's construction, one thread at a time."""
    with _BUILDING:
        return make()


@functools.cache
def progression_table() -> dict[str, float]:
    data = importlib.resources.files("balrog_worker.envs").joinpath("data/nle_progression.json")
    return json.loads(data.read_text())


def render_tty(tty_chars: np.ndarray, cell: tuple[int, int] = (6, 12)) -> np.ndarray:
    """The terminal as an RGB image: light text on black, one block per character."""
    from PIL import Image, ImageDraw, ImageFont

    rows, cols = tty_chars.shape
    width, height = cell
    image = Image.new("RGB", (cols * width, rows * height), "black")
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    for row in range(rows):
        line = bytes(tty_chars[row]).decode("latin-1")
        if line.strip():
            draw.text((0, row * height), line, fill=(220, 220, 220), font=font)
    return np.asarray(image)


class NLEGame(Game):
    """What NetHack and MiniHack share: seeding, BALROG's text and actions, the step.

    ``vision``: the text BALROG shows when images are sent too (see ``nle_text``).
    """

    default_action = "esc"

    def __init__(self, task: str, env, minihack: bool = False, vision: bool = False):
        self.task = task
        self.env = env
        self.nle = env.unwrapped
        self._vocab = nle_text.vocabulary(self.nle.actions, minihack=minihack)
        actions = self.nle.actions
        # Levels whose action set has no MORE key (most MiniHack ones) cannot skip --More--.
        self._more = (actions.index(nethack.MiscAction.MORE)
                      if nethack.MiscAction.MORE in actions else None)
        self._observer = nle_text.LanguageObserver(vision=vision)
        self._obs: dict = {}
        self._message = ""
        self._end_status = None

    @property
    def actions(self) -> dict[str, str]:
        return {name: nle_text.describe(name) for name in self._vocab}

    def nle_seeds(self, seed: int) -> tuple[int, int, bool]:
        """NetHack's (core, display, reseed) seeds for the episode seed ``seed``."""
        return seed, derive_seed("nle-display", seed), False

    def reset(self, seed: int) -> Observation:
        self.nle.seed(*self.nle_seeds(seed))
        self._obs = self.env.reset()
        self._message = self._observer.message(self._obs["tty_chars"])
        self._end_status = None
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        self._obs, reward, done, info = self.env.step(self._vocab[action])
        # BALROG's skip_more: while the message line asks for --More--, press it, joining
        # the messages and adding the rewards, all within this one step.
        message = self._observer.message(self._obs["tty_chars"])
        while self._more is not None and "--More--" in message and not done:
            message = message.replace("--More--", "\n")
            self._obs, more_reward, done, info = self.env.step(self._more)
            message += self._observer.message(self._obs["tty_chars"])
            reward += more_reward
        self._message = message
        self._track(float(reward))
        truncated = bool(done) and info.get("end_status") == NLE.StepStatus.ABORTED
        if done:
            self._end_status = info.get("end_status")
        return StepOutcome(self._observe(), float(reward), bool(done) and not truncated,
                           truncated)

    def _track(self, reward: float) -> None:
        """Per-step bookkeeping for the progression score (subclasses)."""

    def _end_reason(self) -> str | None:
        """'task_successful', 'aborted' (no progress or the step limit), how the
        character died, or None while the episode runs."""
        status = self._end_status
        if status is None:
            return None
        if status == NLE.StepStatus.DEATH:
            return self.nle.nethack.how_done().name.lower()
        return getattr(status, "name", str(status)).lower()  # MiniHack has its own enum

    @property
    def position(self) -> tuple[int, int]:
        stats = self._obs["blstats"]
        return int(stats[nethack.NLE_BL_X]), int(stats[nethack.NLE_BL_Y])

    def _observe(self) -> Observation:
        return self._observer.observe(self._obs, self._message)

    def frame(self) -> np.ndarray:
        return render_tty(self._obs["tty_chars"])

    def close(self) -> None:
        self.env.close()


def registered(env_id: str) -> bool:
    """Whether ``env_id`` is a NetHack id NLE registers with gym."""
    return env_id.startswith("NetHack") and env_id in gym.envs.registry.env_specs


class NetHackGame(NLEGame):
    family = "nethack"

    def __init__(self, task: str, vision: bool = False):
        # BALROG's task is NetHackChallenge-v0; NLE's other ids (MOSAIC's GUI offers them)
        # are played with the same settings, but for the challenge's no-progress timeout.
        env_id = "NetHackChallenge-v0" if task == "challenge" else task
        settings = NETHACK_SETTINGS if env_id == "NetHackChallenge-v0" else {
            k: v for k, v in NETHACK_SETTINGS.items() if k != "no_progress_timeout"}
        super().__init__(task, build(lambda: gym.make(env_id, **settings)), vision=vision)
        # The dungeon depths and experience levels reached after a step (BALROG's table
        # keys are "Dlvl:N" and "Xp:N").
        self._depths: set[int] = set()
        self._levels: set[int] = set()

    def instructions(self) -> str:
        # The information of BALROG's NetHack prompt: the actions, its tips, the goal.
        named = "\n".join(f"{name}: {text}" for name, text in self.actions.items()
                          if len(name) > 1)
        return (
            "You are an agent playing NetHack. These are the actions you can take, each "
            f"with what it does:\n\n{named}\nany single letter (a-z, A-Z) or digit (0-9): "
            "type that key\n\n"
            "Tips:\n"
            "- When the message asks you to choose, such as \"What do you want to eat? [dgh "
            "or ?*]\", answer with the single letter of the item: here d, g or h.\n"
            "- When the message asks for a direction (\"In what direction?\"), answer with a "
            "direction.\n"
            "- When the message ends with --More--, answer more to see the rest.\n"
            "- Explore to find the stairs down to the next level.\n"
            "- Read the last message carefully: it tells you the state of the game.\n"
            "- Moving on in one direction ends at a wall (\"It's solid stone\", \"It's a "
            "wall\"): then change direction to keep exploring.\n"
            "- Read the language observation and the ASCII map (or the image) to choose "
            "where to go.\n"
            "- Attack a monster by moving into it.\n\n"
            "A history of actions and observations from the game will follow. Your goal is "
            "to get as far as you can in the game.\n\nPLAY!"
        )

    def reset(self, seed: int) -> Observation:
        self._depths, self._levels = set(), set()
        return super().reset(seed)

    def _track(self, reward: float) -> None:
        # BALROG's Progress: the experience level and the dungeon depth after each step.
        stats = self._obs["blstats"]
        self._levels.add(int(stats[nethack.NLE_BL_XP]))
        self._depths.add(int(stats[nethack.NLE_BL_DEPTH]))

    def progression(self) -> float:
        table = progression_table()
        keys = [*(f"Dlvl:{d}" for d in self._depths), *(f"Xp:{x}" for x in self._levels)]
        return max((table.get(key, 0.0) for key in keys), default=0.0)

    def episode_info(self) -> dict:
        stats = self._obs["blstats"]
        return {"depth": max(self._depths, default=int(stats[nethack.NLE_BL_DEPTH])),
                "experience_level": max(self._levels, default=int(stats[nethack.NLE_BL_XP])),
                "gold": int(stats[nethack.NLE_BL_GOLD]), "turn": int(stats[nethack.NLE_BL_TIME]),
                "death_reason": self._end_reason()}
