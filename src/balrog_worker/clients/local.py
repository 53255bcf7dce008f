"""The embedded model: llama.cpp running a GGUF file in this process (works offline)."""

from __future__ import annotations

import os
import threading
import time

from balrog_worker.clients.base import Client, Completion, Request
from balrog_worker.clients.grammar import actions_grammar
from balrog_worker.clients.weights import resolve_gguf
from balrog_worker.config import ConfigError

DEFAULT_THREADS = 4
INSTALL_HINT = "the local backend needs llama.cpp: pip install 'balrog-worker[local]'"


def refuse_images(request: Request) -> None:
    """The embedded model reads text only: a request showing it images (a vision agent,
    ``max_image_history`` > 0) is a configuration error, not something to drop silently."""
    if any(message.images for message in request.messages):
        raise ConfigError("the local backend (llama.cpp) is text-only: it cannot take "
                          "images; set max_image_history to 0 or use an API backend")


class LlamaCppClient(Client):
    """The model in this process, with one llama.cpp context per player.

    A context reuses the part of a prompt it evaluated on the previous call, so each
    player of a multi-agent game gets its own context (the weights are memory-mapped
    once and shared): alternating players would otherwise re-evaluate every prompt
    whole. Calls are serialised (the cores are shared), and a cell plays one episode at
    a time, so that every context sees its player's prompts grow step by step."""

    max_concurrency = 1

    def __init__(self, model: str, *, n_ctx: int, threads: int | None, temperature: float,
                 max_tokens: int, top_p: float | None = None, constrain_actions: bool = False):
        try:
            from llama_cpp import Llama
        except ImportError as error:
            raise RuntimeError(INSTALL_HINT) from error
        self.path = resolve_gguf(model)
        # More threads than free cores makes llama.cpp crawl (its threads spin-wait on
        # each other), so the default stays modest; Snakemake reserves the same number.
        threads = threads or min(DEFAULT_THREADS, os.cpu_count() or 1)
        self._new_context = lambda: Llama(model_path=str(self.path), n_ctx=n_ctx,
                                          n_threads=threads, verbose=False)
        self._contexts = {"agent_0": self._new_context()}  # fails here on bad weights
        self._settings = {"temperature": temperature, "max_tokens": max_tokens}
        if top_p is not None:
            self._settings["top_p"] = top_p
        self._lock = threading.Lock()
        self.constrain_actions = constrain_actions
        self._grammars: dict[tuple[str, ...], object] = {}

    def complete(self, request: Request) -> Completion:
        refuse_images(request)
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._lock:
            if request.player not in self._contexts:
                self._contexts[request.player] = self._new_context()
            extra = {}
            if self.constrain_actions and request.valid_actions:
                extra["grammar"] = self._grammar(request.valid_actions)
            start = time.perf_counter()
            response = self._contexts[request.player].create_chat_completion(
                messages=messages, seed=request.seed, **self._settings, **extra
            )
            latency = time.perf_counter() - start
        usage = response.get("usage") or {}
        return Completion(
            text=response["choices"][0]["message"]["content"] or "",
            input_tokens=usage.get("prompt_tokens", 0),
            output_tokens=usage.get("completion_tokens", 0),
            latency_s=latency,
        )

    def _grammar(self, actions: tuple[str, ...]):
        """The compiled grammar of an action list (compiled once per distinct list)."""
        if actions not in self._grammars:
            from llama_cpp import LlamaGrammar

            self._grammars[actions] = LlamaGrammar.from_string(actions_grammar(actions),
                                                               verbose=False)
        return self._grammars[actions]

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()
