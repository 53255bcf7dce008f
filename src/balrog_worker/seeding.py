"""Deterministic seeds derived from names, never from time or process ids."""

import hashlib

SEED_BITS = 31


def derive_seed(*parts: object) -> int:
    """A stable non-negative seed from any sequence of printable parts.

    The same parts give the same seed on every machine and Python version (unlike
    ``hash()``), so an episode replays identically wherever it is rerun.
    """
    text = "\x1f".join(str(part) for part in parts)
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % (1 << SEED_BITS)


def episode_seed(base_seed: int, env: str, task: str, episode_index: int) -> int:
    """The environment seed of one episode.

    It depends on the game (env, task) and the episode index but not on the model or the
    agent, so every model and agent plays the same games: comparisons are paired by seed.
    """
    return derive_seed("episode", base_seed, env, task, episode_index)
