"""Model backends by name. Provider libraries are imported only when used."""

from __future__ import annotations

import importlib

from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.config import ConfigError, ModelSpec

__all__ = ["API_BACKENDS", "BACKENDS", "Client", "Completion", "Message", "Request",
           "make_client", "preflight"]

# backend -> (module:class, the pip requirement that provides its SDK)
API_BACKENDS = {
    "openai": ("balrog_worker.clients.openai_client:OpenAIClient", "openai"),
    "vllm": ("balrog_worker.clients.openai_client:OpenAIClient", "openai"),
    "openai_compatible": ("balrog_worker.clients.openai_client:OpenAIClient", "openai"),
    "anthropic": ("balrog_worker.clients.anthropic_client:AnthropicClient", "anthropic"),
    "gemini": ("balrog_worker.clients.gemini_client:GeminiClient", "google-genai"),
}
BACKENDS = ("random", "scripted", "local", *API_BACKENDS)
BASELINES = ("random", "scripted")


def make_client(spec: ModelSpec, cache_mode: str = "on") -> Client:
    """A ready client for ``spec`` (behind the response cache unless ``cache_mode`` is
    off or the backend is a baseline); fails here, before any episode, on a bad spec or a
    missing key."""
    if spec.backend in BASELINES or cache_mode == "off":
        return _backend(spec)
    from balrog_worker.clients.cache import CachedClient, open_cache

    cache = open_cache(cache_mode)  # a damaged file stops the run before the model loads
    if cache is None:  # its disk is full (said): the run goes on without it
        return _backend(spec)
    return CachedClient(_backend(spec), spec.identity(), cache, cache_mode)


def preflight(spec: ModelSpec, cache_mode: str = "off") -> None:
    """Fail now, before anything is written, if ``spec``'s backend cannot work here: its
    SDK is missing, its key is not set, or the response cache it would use is damaged."""
    if spec.backend not in BASELINES and cache_mode != "off":
        from balrog_worker.clients.cache import open_cache

        cache = open_cache(cache_mode)
        if cache is not None:
            cache.close()
    if spec.backend not in API_BACKENDS:
        return
    _client_class(spec)
    if spec.api_key_env or spec.backend in KEY_VARIABLES:
        from balrog_worker.clients.api import api_key

        api_key(spec, KEY_VARIABLES.get(spec.backend, ()))


# The key variables of each backend (a spec's api_key_env replaces them); the local
# servers of vllm and openai_compatible need none.
KEY_VARIABLES = {"openai": ("OPENAI_API_KEY",), "anthropic": ("ANTHROPIC_API_KEY",),
                 "gemini": ("GOOGLE_API_KEY", "GEMINI_API_KEY")}


def _client_class(spec: ModelSpec) -> type[Client]:
    target, requirement = API_BACKENDS[spec.backend]
    module_name, attr = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(f"model {spec.name!r}: the {spec.backend} backend needs "
                          f"{requirement}: pip install {requirement} ({error})") from None
    return getattr(module, attr)


def _backend(spec: ModelSpec) -> Client:
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
            constrain_actions=spec.constrain_actions,
        )
    if spec.serve is not None:  # a vLLM server this job starts and stops
        from balrog_worker.clients.vllm_server import ServedClient

        return ServedClient(spec, lambda served: _client_class(served)(served))
    if spec.backend in API_BACKENDS:
        return _client_class(spec)(spec)
    raise ConfigError(f"model {spec.name!r}: unknown backend {spec.backend!r}")
