"""Demonstrations for the few-shot agent, leak-free by construction.

BALROG shows a recorded episode of the same task before the evaluated one (its
``records`` dataset, separate from the evaluated games). Here a demonstration is an
episode the game's scripted expert plays on a *demonstration seed*: seeds are drawn from
their own namespace, and any that equals a seed the cell plays is skipped, so a cell is
never shown the solution of a game it is scored on. Each demonstration says where it
came from (source, seed), and the episode records carry that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from balrog_worker.seeding import derive_seed

# A demonstration ends with its game, or after this many steps.
MAX_DEMONSTRATION_STEPS = 1000


@dataclass(frozen=True)
class Demonstration:
    source: str  # who played it: "scripted" (the game's expert)
    env: str
    task: str
    seed: int
    # The texts of the reset observation and of the one after each action, as BALROG's
    # recorded episodes hold them: one more observation than actions.
    observations: tuple[str, ...]
    actions: tuple[str, ...]
    progression: float

    def provenance(self) -> dict:
        return {"source": self.source, "env": self.env, "task": self.task, "seed": self.seed,
                "steps": len(self.actions), "progression": self.progression}


# Demonstration seeds tried before giving up (only a task of few games can run out).
MAX_DEMONSTRATION_DRAWS = 10_000


def demonstration_seeds(base_seed: int, env: str, task: str, count: int,
                        played: frozenset[int],
                        game_of: Callable[[int], int] = lambda seed: seed) -> list[int]:
    """``count`` seeds of the demonstration namespace that play none of the ``played``
    games (``game_of`` names the game a seed plays) and no game twice."""
    seeds: list[int] = []
    games = set(played)
    for k in range(MAX_DEMONSTRATION_DRAWS):
        seed = derive_seed("demonstration", base_seed, env, task, k)
        if game_of(seed) not in games:
            seeds.append(seed)
            games.add(game_of(seed))
            if len(seeds) == count:
                return seeds
    raise ValueError(f"{env}/{task}: no game is left for {count} demonstration(s) that the "
                     "cell does not play")


@functools.cache
def scripted_demonstration(env: str, task: str, seed: int) -> Demonstration:
    """One episode of ``env/task`` on ``seed`` played by the game's scripted expert."""
    from balrog_worker import envs

    game = envs.make(env, task)
    try:
        observations = [game.reset(seed).text]
        actions = []
        for _ in range(MAX_DEMONSTRATION_STEPS):
            actions.append(game.oracle_action())
            outcome = game.step(actions[-1])
            observations.append(outcome.observation.text)
            if outcome.terminated or outcome.truncated:
                break
        return Demonstration("scripted", env, task, seed, tuple(observations), tuple(actions),
                             game.progression())
    finally:
        game.close()
