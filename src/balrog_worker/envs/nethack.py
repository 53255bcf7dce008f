"""NetHack (NLE's NetHackChallenge-v0) as BALROG plays it, seeded per episode.

The challenge forbids choosing seeds so that competitors cannot pick easy games. An
evaluation needs the opposite (every model plays the same games), so this module keeps
the challenge's rules (random role, all prompts and modes allowed) and only lifts the
seeding lock. Progression is BALROG's: the largest human-play win rate over the dungeon
levels and experience levels the episode reached (data/nle_progression.json).
"""

from __future__ import annotations

import functools
import importlib.resources
import json

import gymnasium as gym
import numpy as np
from nle import nethack
from nle.env.base import NLE
from nle.env.tasks import NetHackChallenge

from balrog_worker.envs import nle_text
from balrog_worker.envs.base import Game, Observation, StepOutcome
from balrog_worker.seeding import derive_seed

OBSERVATION_KEYS = ("glyphs", "blstats", "message", "inv_strs", "inv_letters", "tty_chars",
                    "tty_cursor", "screen_descriptions")


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
    """What NetHack and MiniHack share: text, actions, seeding, the step."""

    default_action = "esc"

    def __init__(self, task: str, env: gym.Env, minihack: bool = False):
        self.task = task
        self.env = env
        self._vocab = nle_text.vocabulary(env.unwrapped.actions, minihack=minihack)
        actions = env.unwrapped.actions
        # Levels whose action set has no MORE key (most MiniHack ones) cannot skip --More--.
        self._more = (actions.index(nethack.MiscAction.MORE)
                      if nethack.MiscAction.MORE in actions else None)
        self._obs: dict = {}
        self._message = ""
        self._done_reason: str | None = None

    @property
    def actions(self) -> dict[str, str]:
        return {name: description for name, (_, description) in self._vocab.items()}

    def _seed(self, seed: int) -> None:
        NLE.seed(self.env.unwrapped, seed, derive_seed("nle-display", seed), reseed=False)

    def reset(self, seed: int) -> Observation:
        self._seed(seed)
        self._obs, _ = self.env.reset()
        self._message = top_line(self._obs["tty_chars"])
        self._done_reason = None
        self._track()
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        self._obs, reward, terminated, truncated, info = self.env.step(self._vocab[action][0])
        self._track()
        # BALROG's skip_more: while the message line asks for --More--, press it, joining
        # the messages and adding the rewards, all within this one step.
        message = top_line(self._obs["tty_chars"])
        while (self._more is not None and "--More--" in message
               and not (terminated or truncated)):
            message = message.replace("--More--", "\n")
            self._obs, more_reward, terminated, truncated, info = self.env.step(self._more)
            self._track()
            message += top_line(self._obs["tty_chars"])
            reward += more_reward
        self._message = message
        if terminated or truncated:
            self._done_reason = self._end_reason(info)
        return StepOutcome(self._observe(), float(reward), bool(terminated), bool(truncated))

    def _end_reason(self, info: dict) -> str:
        """'task_successful', 'aborted' (step limit), or how the character died."""
        status = info.get("end_status")
        if status == NLE.StepStatus.DEATH:
            return self.env.unwrapped.nethack.how_done().name.lower()
        return getattr(status, "name", str(status)).lower()  # MiniHack has its own enum

    def _track(self) -> None:
        """Per-step bookkeeping for the progression score (subclasses)."""

    @property
    def position(self) -> tuple[int, int]:
        stats = self._obs["blstats"]
        return int(stats[nethack.NLE_BL_X]), int(stats[nethack.NLE_BL_Y])

    def status_line(self) -> str:
        s = self._obs["blstats"]
        return (f"Dungeon level {s[nethack.NLE_BL_DEPTH]}, HP {s[nethack.NLE_BL_HP]}/"
                f"{s[nethack.NLE_BL_HPMAX]}, experience level {s[nethack.NLE_BL_XP]}, gold "
                f"{s[nethack.NLE_BL_GOLD]}, turn {s[nethack.NLE_BL_TIME]}")

    def _observe(self) -> Observation:
        obs = self._obs
        x, y = self.position
        seen = nle_text.surroundings(obs["screen_descriptions"], x, y)
        message = self._message.strip() or "(none)"
        row, col = (int(v) for v in obs["tty_cursor"])
        text = "\n".join([
            f"Message: {message}",
            "What you see around you (nearest of each kind):",
            *(f"- {line}" for line in seen or ["nothing"]),
            f"Cursor: row {row}, column {col}",
            "Screen:",
            nle_text.screen(obs["tty_chars"]),
        ])
        items = nle_text.inventory(obs["inv_letters"], obs["inv_strs"])
        context = "\n".join([f"Status: {self.status_line()}", "Inventory:",
                             *(f"- {item}" for item in items or ["nothing"])])
        return Observation(text, context)

    def frame(self) -> np.ndarray:
        return render_tty(self._obs["tty_chars"])

    def close(self) -> None:
        self.env.close()


def top_line(tty_chars: np.ndarray) -> str:
    """The terminal's message line, where NetHack writes messages and --More--."""
    return bytes(tty_chars[0]).decode("latin-1").rstrip("\x00").strip()


# BALROG's NetHack settings (its config.yaml, nle_kwargs): a random role ("@"), 100,000
# steps, and an episode ends after 150 steps without progress (NLE's default is 10,000).
NETHACK_SETTINGS = {"character": "@", "max_episode_steps": 100_000, "no_progress_timeout": 150}


class SeedableChallenge(NetHackChallenge):
    """NetHackChallenge with its rules intact and its seeding lock lifted."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("set_initial_seeds", "set_current_seeds", "get_current_seeds"):
            self.nethack.__dict__.pop(name, None)  # the class methods show through again


class NetHackGame(NLEGame):
    family = "nethack"

    def __init__(self, task: str):
        super().__init__(task, SeedableChallenge(observation_keys=OBSERVATION_KEYS,
                                                 **NETHACK_SETTINGS))
        self._max_depth = self._max_level = 0
        self._milestones: set[str] = set()

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
            "- Read the description and the ASCII map (or the image) to choose where to go.\n"
            "- Attack a monster by moving into it.\n\n"
            "A history of actions and observations from the game will follow. Your goal is "
            "to get as far as you can in the game.\n\nPLAY!"
        )

    def _track(self) -> None:
        stats = self._obs["blstats"]
        self._max_depth = max(self._max_depth, int(stats[nethack.NLE_BL_DEPTH]))
        self._max_level = max(self._max_level, int(stats[nethack.NLE_BL_XP]))
        bottom = nle_text.screen(self._obs["tty_chars"][-2:])
        for plane in ("Astral Plane", *(f"Home {n}" for n in range(1, 6))):
            if plane in bottom:
                self._milestones.add(plane)
        if nle_text.decode(self._obs["message"]).startswith("You ascend t"):
            self._milestones.add("You ascend t")

    def progression(self) -> float:
        table = progression_table()
        keys = [f"Dlvl:{self._max_depth}", f"Xp:{self._max_level}", *self._milestones]
        return max(table.get(key, 0.0) for key in keys)

    def episode_info(self) -> dict:
        stats = self._obs["blstats"]
        return {"depth": self._max_depth, "experience_level": self._max_level,
                "gold": int(stats[nethack.NLE_BL_GOLD]), "turn": int(stats[nethack.NLE_BL_TIME]),
                "death_reason": self._done_reason}
