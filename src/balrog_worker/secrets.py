"""Keys never reach a log, a record, an error message or a config dump.

``redact`` hides every key this process knows of (the values of the key variables, and
keys registered as they are read) and every token that looks like one, so it can guard
messages built from user input: a key pasted where a variable name or a model id belongs
is hidden before anything prints it.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

# Environment variables whose values must never be written anywhere; any other variable
# named *_API_KEY counts too.
SECRET_VARIABLES = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GOOGLE_API_KEY", "GEMINI_API_KEY",
                    "VLLM_API_KEY", "HF_TOKEN")
HIDDEN = "***"
# Providers' key formats: OpenAI sk-/sk-proj-, Anthropic sk-ant-, Google AIza, Hugging
# Face hf_, Groq gsk_, xAI xai-.
_PROVIDER_KEYS = re.compile(
    r"(?:sk|gsk|xai)[-_][A-Za-z0-9_-]{16,}|AIza[0-9A-Za-z_-]{30,}|hf_[A-Za-z0-9]{30,}")
# Any other long token mixing lower case, upper case and digits: hidden in messages, but
# not refused as a value (a model file's name can look like that; a sha256 in hex has no
# upper case, so it survives).
# Runs of token characters are found first and their mix checked after: lookaheads at
# every position of a long run would take quadratic time (100 kB of "x": 50 s).
_TOKEN_RUNS = re.compile(r"[A-Za-z0-9_-]{40,}")
_LOWER, _UPPER, _DIGIT = re.compile("[a-z]"), re.compile("[A-Z]"), re.compile("[0-9]")


def _hide_opaque(match: re.Match) -> str:
    token = match.group()
    mixed = _LOWER.search(token) and _UPPER.search(token) and _DIGIT.search(token)
    return HIDDEN if mixed else token

_registered: set[str] = set()


def register_secret(value: str) -> None:
    """Have ``redact`` hide ``value`` too (a key read from a variable a model names)."""
    if len(value) >= 4:
        _registered.add(value)


def known_secrets() -> set[str]:
    names = set(SECRET_VARIABLES) | {name for name in os.environ if name.endswith("_API_KEY")}
    values = {os.environ.get(name) or "" for name in names} | _registered
    return {value for value in values if len(value) >= 4}


def _hide_known(text: str) -> str:
    for value in sorted(known_secrets(), key=len, reverse=True):  # a key inside another
        text = text.replace(value, HIDDEN)
    return _PROVIDER_KEYS.sub(HIDDEN, text)


def looks_like_key(text: str) -> bool:
    """Does ``text`` hold a key this process knows, or one in a provider's format?"""
    return _hide_known(text) != text


def redact(text: str) -> str:
    """``text`` with every known key, every provider-shaped key and every long opaque
    token replaced by '***'."""
    return _TOKEN_RUNS.sub(_hide_opaque, _hide_known(text))


def url_has_credentials(url: str) -> bool:
    """Does ``url`` carry user:password@ (which would be written wherever the URL is)?"""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.username is not None or parts.password is not None
