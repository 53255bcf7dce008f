"""Reference policies that answer without a language model."""

from __future__ import annotations

import random

from balrog_worker.clients.base import Client, Completion, Request


class RandomClient(Client):
    """Uniform over the valid actions, seeded by the request: the floor of every table."""

    def complete(self, request: Request) -> Completion:
        return Completion(text=random.Random(request.seed).choice(request.valid_actions),
                          verbatim=True)


class ScriptedClient(Client):
    """The game's own expert (the BabyAI bot, a TextWorld walkthrough): the reference
    ceiling of a table, and a check that the game and its scoring work end to end."""

    def complete(self, request: Request) -> Completion:
        if request.oracle is None:
            raise RuntimeError("the scripted baseline needs a game with a scripted oracle")
        return Completion(text=request.oracle(), verbatim=True)
