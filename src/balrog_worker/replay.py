"""Replay a recorded episode: its seed and recorded actions play the game again.

Frames are not stored; they are rendered here, on demand, from the game the records
describe (the cell's config beside them, the episode's seed, each step's played action
for every player). The replay is also a check of the records and of the harness's
determinism: where the replayed game shows a player text its recorded prompt does not
contain, or gives another reward or end, the step says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from balrog_worker import documents, envs
from balrog_worker.config import CellConfig, cell_config_from_dict
from balrog_worker.records import is_count, is_finite, is_number
from balrog_worker.store import EPISODES, STEPS, SUMMARY, read_jsonl

CELL_CONFIG = "cell.json"  # what Snakemake passes; a summary holds the same config
_NOT_CONFIG = ("versions", "git_revision", "aggregate")
MAX_SEED = 2**32 - 1  # what every game's seeding accepts (ours derive 31-bit seeds)


class ReplayError(RuntimeError):
    """The records cannot be replayed (no config, no such episode)."""


@dataclass
class ReplayedStep:
    """The game as the players saw it before step ``step`` (the final state when the
    episode is over: ``step`` = its number of steps, no records)."""

    step: int
    texts: dict[str, str]  # each player's observation text, as the game printed it
    frames: dict[str, np.ndarray]  # each player's frame (and "field": a whole field)
    records: dict[str, dict]  # each player's step record (what it was shown and did)
    facts: dict = field(default_factory=dict)  # the game's facts so far (a team's score)
    mismatches: list[str] = field(default_factory=list)


def cell_config(cell_dir: Path) -> CellConfig:
    """The config a cell's records were made with (its cell.json, else its summary)."""
    for name in (CELL_CONFIG, SUMMARY):
        path = Path(cell_dir) / name
        if path.is_file():
            try:  # records from elsewhere: any defect is this cell's, said in one line
                data = documents.load_json(documents.read_text(path))
                if not isinstance(data, dict):
                    raise ValueError("not a JSON object")
                return cell_config_from_dict(
                    {k: v for k, v in data.items() if k not in _NOT_CONFIG}, source=str(path))
            except ValueError as error:  # ConfigError and DocumentError among them
                raise ReplayError(f"{path}: {str(error).splitlines()[0]}") from None
    raise ReplayError(f"{cell_dir}: no {CELL_CONFIG} or {SUMMARY}: not a finished cell")


def episode_records(cell_dir: Path, index: int) -> tuple[dict, list[dict]]:
    """Episode ``index``'s record and its step records, in order."""
    try:
        episodes, _ = read_jsonl(Path(cell_dir) / EPISODES)
        steps, _ = read_jsonl(Path(cell_dir) / STEPS)
    except OSError as error:
        raise ReplayError(f"{cell_dir}: its records cannot be read ({error})") from None
    episode = next((e for e in episodes  # read_jsonl gives JSON objects only
                    if e.get("episode_index") == index and not e.get("failed")), None)
    if episode is None:
        raise ReplayError(f"{cell_dir}: no finished episode {index}")
    if not (is_count(episode.get("seed")) and is_count(episode.get("num_steps"))):
        raise ReplayError(f"{cell_dir}: episode {index}: its seed or num_steps is not a "
                          "whole number")
    if episode["seed"] > MAX_SEED:
        raise ReplayError(f"{cell_dir}: episode {index}: seed {episode['seed']} is out of "
                          f"range (episode seeds are below 2**32)")
    mine = [s for s in steps if s.get("episode_index") == index]
    if not all(_sound(step) for step in mine):
        raise ReplayError(f"{cell_dir}: episode {index}: a step record is damaged")
    mine.sort(key=lambda s: (s["step"], s["agent_id"]))
    recorded = len({s["step"] for s in mine})
    if episode["num_steps"] > recorded:
        raise ReplayError(f"{cell_dir}: episode {index} claims {episode['num_steps']} steps; "
                          f"its records hold {recorded}")
    return episode, mine


def _sound(step: dict) -> bool:
    """Whether a step record has what a replay reads, of the right types."""
    return (is_count(step.get("step")) and isinstance(step.get("agent_id"), str)
            and isinstance(step.get("action"), str)
            and isinstance(step.get("observation"), str)
            and is_number(step.get("reward"))
            and isinstance(step.get("terminated"), bool)
            and isinstance(step.get("truncated"), bool))


class Replay:
    """Episode ``index`` of the cell in ``cell_dir``, played again from its records."""

    def __init__(self, cell_dir: Path | str, index: int):
        self.dir = Path(cell_dir)
        self.config = cell_config(self.dir)
        self.episode, self.steps = episode_records(self.dir, index)
        cap = self.config.max_steps or envs.FAMILIES[self.config.cell.env].max_steps
        if cap is not None and self.episode["num_steps"] > cap:
            raise ReplayError(f"{self.dir}: episode {index} claims {self.episode['num_steps']} "
                              f"steps; its cell stops episodes at {cap}")
        self.index = index
        self.by_step: dict[int, dict[str, dict]] = {}
        for record in self.steps:
            self.by_step.setdefault(record["step"], {})[record["agent_id"]] = record

    def __iter__(self) -> Iterator[ReplayedStep]:
        return self.play()

    def play(self, frames: bool = True) -> Iterator[ReplayedStep]:
        """Each step as the players saw it, then the final state (``frames``: rendered;
        a check alone needs none)."""
        config = self.config
        game = envs.open_game(config.cell.env, config.cell.task, **config.game_options())
        try:
            observations = game.reset(self.episode["seed"])
            count = self.episode["num_steps"]
            for step in range(count + 1):
                records = self.by_step.get(step, {}) if step < count else {}
                replayed = ReplayedStep(
                    step=step, texts={p: o.text for p, o in observations.items()},
                    frames=_frames(game) if frames else {}, records=records,
                    facts=_plain(game.episode_info()))
                for player, record in records.items():
                    if replayed.texts.get(player, "") not in record["observation"]:
                        replayed.mismatches.append(
                            f"step {step} {player}: the replayed observation is not the "
                            "one recorded")
                if step == count:
                    self._check_end(game, replayed)
                    yield replayed
                    return
                actions = {p: r["action"] for p, r in records.items()}
                for player, action in actions.items():  # records from elsewhere
                    if player not in game.players or not game.is_valid(player, action):
                        raise ReplayError(
                            f"{self.dir}: episode {self.index} step {step}: "
                            f"{player[:40]!r} cannot play {action[:40]!r} in this game")
                turn = game.step({p: actions.get(p, game.default_action(p))
                                  for p in game.players})
                for player, record in records.items():
                    reward = turn.rewards.get(player, 0.0)
                    if abs(reward - record["reward"]) > 1e-9:
                        replayed.mismatches.append(
                            f"step {step} {player}: reward {reward:g} replayed, "
                            f"{record['reward']:g} recorded")
                    if (turn.terminated, turn.truncated) != (record["terminated"],
                                                             record["truncated"]):
                        replayed.mismatches.append(f"step {step}: the episode ended "
                                                   "differently")
                observations = turn.observations
                yield replayed
        finally:
            game.close()

    def _check_end(self, game, final: ReplayedStep) -> None:
        recorded = self.episode.get("progression")
        if recorded is not None and not is_finite(recorded):
            final.mismatches.append(f"progression {game.progression():g} replayed, "
                                    f"{str(recorded)[:40]!r} recorded")
        elif recorded is not None and abs(game.progression() - recorded) > 1e-9:
            final.mismatches.append(f"progression {game.progression():g} replayed, "
                                    f"{recorded:g} recorded")

    def check(self) -> list[str]:
        """Every difference between the replay and the records (none: they agree)."""
        return [line for step in self.play(frames=False) for line in step.mismatches]


def _frames(game) -> dict[str, np.ndarray]:
    frames = {player: game.frame(player) for player in game.players}
    if hasattr(game, "field_frame"):  # a multi-agent game's whole field
        frames["field"] = game.field_frame()
    return frames


def _plain(facts: dict) -> dict:
    """``facts`` as JSON can carry them (numpy numbers become Python ones)."""
    return json.loads(json.dumps(facts, default=lambda value: getattr(value, "item",
                                                                      lambda: str(value))()))


def tile(frames: dict[str, np.ndarray], gap: int = 4) -> np.ndarray:
    """Several players' frames side by side (one player: its frame), on black."""
    images = list(frames.values())
    if len(images) == 1:
        return images[0]
    height = max(image.shape[0] for image in images)
    width = sum(image.shape[1] for image in images) + gap * (len(images) - 1)
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    x = 0
    for image in images:
        canvas[:image.shape[0], x:x + image.shape[1]] = image[..., :3]
        x += image.shape[1] + gap
    return canvas


ANIMATIONS = (".gif", ".webp")


def _with_progress(frame: np.ndarray, step: int, last: int) -> np.ndarray:
    """``frame`` over a bar showing how far into the episode it is. Its shade changes
    every step, so no two frames are the same (a GIF writer merges equal ones, and an
    animation must keep one frame a step)."""
    bar = np.zeros((4, frame.shape[1], 3), dtype=np.uint8)
    bar[:, :max(1, round(frame.shape[1] * step / max(1, last)))] = (
        90 + (step * 53) % 120, 140, 230)
    return np.concatenate([frame[..., :3], bar])


def write_animation(replay: Replay, out: Path, *, frame_ms: int = 250, max_side: int = 480,
                    max_frames: int | None = None) -> tuple[int, list[str]]:
    """An animation of the episode (GIF or WebP, by ``out``'s suffix): one frame a step
    and the final state (``max_frames``: evenly spaced steps, and the final state), every
    player's view side by side. Returns the frame count and the replay's mismatches."""
    from PIL import Image

    suffix = out.suffix.lower()
    if suffix not in ANIMATIONS:
        raise ReplayError(f"{out}: write a .gif or a .webp (mp4 is not supported)")
    last = replay.episode["num_steps"]
    every = 1 if not max_frames or last + 1 <= max_frames else -(-(last + 1) // max_frames)
    images, mismatches = [], []
    for step in replay:
        mismatches += step.mismatches
        if step.step % every and step.step != last:
            continue
        image = Image.fromarray(_with_progress(tile(step.frames), step.step, last))
        scale = min(1.0, max_side / max(image.size))
        if scale < 1.0:
            image = image.resize((max(1, int(image.width * scale)),
                                  max(1, int(image.height * scale))), Image.NEAREST)
        images.append(image)
    out.parent.mkdir(parents=True, exist_ok=True)
    images[0].save(out, save_all=True, append_images=images[1:], duration=frame_ms, loop=0,
                   **({"optimize": False} if suffix == ".gif" else {"lossless": True}))
    return len(images), mismatches
