"""Model backends by name. Provider libraries are imported only when used."""

from __future__ import annotations

from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.config import ModelSpec

BACKENDS = ("random", "scripted", "local")

__all__ = ["BACKENDS", "Client", "Completion", "Message", "Request", "make_client"]


def make_client(spec: ModelSpec) -> Client:
    """A ready client for ``spec``; fails here, before any episode, on a bad spec."""
    if spec.backend == "random":
        from balrog_worker.clients.baselines import RandomClient

        return RandomClient()
    if spec.backend == "scripted":
        from balrog_worker.clients.baselines import ScriptedClient

        return ScriptedClient()
    if spec.backend == "local":
        from balrog_worker.clients.local import LlamaCppClient
        from balrog_worker.clients.weights import DEFAULT_MODEL

        return LlamaCppClient(
            spec.model or DEFAULT_MODEL,
            n_ctx=spec.n_ctx,
            threads=spec.threads,
            temperature=spec.generation.temperature,
            max_tokens=spec.generation.max_tokens,
            top_p=spec.generation.top_p,
        )
    raise ValueError(f"model {spec.name!r}: unknown backend {spec.backend!r}")
