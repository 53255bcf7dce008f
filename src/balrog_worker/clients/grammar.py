"""Constrained decoding: a GBNF grammar (llama.cpp's format) whose only sentences are the
valid actions, so a model can answer nothing else."""

from __future__ import annotations

import json


def actions_grammar(actions: tuple[str, ...] | list[str]) -> str:
    """``root ::= "a" | "b"``; JSON's string escapes (quote, backslash, control
    characters) are also GBNF's."""
    return "root ::= " + " | ".join(json.dumps(a, ensure_ascii=False) for a in actions)
