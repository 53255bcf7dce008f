"""The embedded model: llama.cpp running a GGUF file in this process (works offline)."""

from __future__ import annotations

import os
import threading
import time

from balrog_worker.clients.base import Client, Completion, Request
from balrog_worker.clients.weights import resolve_gguf

DEFAULT_THREADS = 4
INSTALL_HINT = "the local backend needs llama.cpp: pip install 'balrog-worker[local]'"


class LlamaCppClient(Client):
    """The model in this process, with one llama.cpp context per player.

    A context reuses the part of a prompt it evaluated on the previous call, so each
    player of a multi-agent game gets its own context (the weights are memory-mapped
    once and shared): alternating players would otherwise re-evaluate every prompt
    whole. Calls are serialised (the cores are shared), and a cell plays one episode at
    a time, so that every context sees its player's prompts grow step by step."""

    max_concurrency = 1

    def __init__(self, model: str, *, n_ctx: int, threads: int | None, temperature: float,
                 max_tokens: int, top_p: float | None = None):
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

    def complete(self, request: Request) -> Completion:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._lock:
            if request.player not in self._contexts:
                self._contexts[request.player] = self._new_context()
            start = time.perf_counter()
            response = self._contexts[request.player].create_chat_completion(
                messages=messages, seed=request.seed, **self._settings
            )
            latency = time.perf_counter() - start
        usage = response.get("usage") or {}
        return Completion(
            text=response["choices"][0]["message"]["content"] or "",
            input_tokens=usage.get("prompt_tokens", 0),
            output_tokens=usage.get("completion_tokens", 0),
            latency_s=latency,
        )

    def close(self) -> None:
        for context in self._contexts.values():
            context.close()
