"""Reference policies that answer without a language model."""

from __future__ import annotations

import random

from balrog_worker.clients.base import Client, Completion, Request


class RandomClient(Client):
    """Uniform over the valid actions, seeded by the request: the floor of every table."""

    def complete(self, request: Request) -> Completion:
        return Completion(text=random.Random(request.seed).choice(request.valid_actions))
