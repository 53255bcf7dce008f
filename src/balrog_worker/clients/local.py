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
    """One llama.cpp context shared by all episodes of a cell; calls are serialised
    because a context decodes one sequence at a time. For the same reason the cell plays
    one episode at a time: its prompts then grow step by step and llama.cpp reuses the
    evaluated prefix, where interleaved episodes would re-evaluate every prompt whole."""

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
        self._llm = Llama(model_path=str(self.path), n_ctx=n_ctx, n_threads=threads,
                          verbose=False)
        self._settings = {"temperature": temperature, "max_tokens": max_tokens}
        if top_p is not None:
            self._settings["top_p"] = top_p
        self._lock = threading.Lock()

    def complete(self, request: Request) -> Completion:
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        with self._lock:
            start = time.perf_counter()
            response = self._llm.create_chat_completion(
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
        self._llm.close()
