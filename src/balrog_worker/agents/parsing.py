"""Reading an action out of a model's answer: BALROG's tag rule, and this project's
tolerant reading (``answer_parsing: lenient``)."""

from __future__ import annotations

import re

# Every pattern here runs in linear time on any answer: a model may send 100 kB of
# whitespace, punctuation or unclosed tags, and a backtracking pattern would spend
# minutes on it (a ``\s*`` or ``\W*`` free to retry from every position is quadratic).
# An opening fence, with its language tag only where the tag ends the line: "```go
# forward```" is an action in backticks, not a block of the language "go".
_OPENING_FENCE = re.compile(r"^```(?:[\w-]*[ \t]*\n)?\s*")
_EDGE_NOISE = " \t\r\n\"'`*.,;:!?()[]{}<>"


def normalise(text: str) -> str:
    """Lower-case, fences, quotes, markup and edge punctuation removed, spaces collapsed."""
    text = _OPENING_FENCE.sub("", text.strip(), count=1)
    if text.endswith("```"):
        text = text[:-3].rstrip()
    text = " ".join(text.split()).strip(_EDGE_NOISE)
    return text.lower()


def match_action(answer: str, valid_actions: list[str] | tuple[str, ...]) -> str:
    """The valid action ``answer`` names, else the normalised answer (an invalid candidate).

    The whole answer is tried, then its first non-empty line, so "go forward\\n(because...)"
    still counts. Matching is exact after normalisation: no fuzzy guessing on the model's
    behalf. Single letters and digits survive normalisation (NetHack menus need them).
    """
    by_normal = {normalise(action): action for action in valid_actions}
    whole = normalise(answer)
    if whole in by_normal:
        return by_normal[whole]
    first_line = next((line for line in answer.splitlines() if line.strip()), "")
    return by_normal.get(normalise(first_line), whole)


_OPEN_TAG = re.compile(r"<\|ACTION\|>", re.IGNORECASE)
_CLOSE_TAG = re.compile(r"<\|END\|>", re.IGNORECASE)
# Within one line: a label line's leading and trailing non-word characters.
_LABELLED = re.compile(r"^[^\w\n]*(?P<label>ACTION|PLAN)[^\w\n]*:\s*(?P<value>.*)$",
                       re.IGNORECASE | re.MULTILINE)


def first_tagged(answer: str) -> str | None:
    """BALROG's tag reading: the text between the first <|ACTION|> and the next <|END|>,
    tags in exactly that case (None if there is no such span). If the first opening tag
    has no closing tag after it, no later one has either: one scan, linear time."""
    opening = answer.find("<|ACTION|>")
    if opening < 0:
        return None
    start = opening + len("<|ACTION|>")
    closing = answer.find("<|END|>", start)
    return None if closing < 0 else answer[start:closing]


def tagged(answer: str) -> tuple[str | None, int]:
    """The text of the last <|ACTION|>...<|END|> span and where the first span starts
    (None and -1 if there is none). Spans are read left to right, each from an opening
    tag to the next closing tag."""
    last, first_start, position = None, -1, 0
    while (opening := _OPEN_TAG.search(answer, position)) is not None:
        closing = _CLOSE_TAG.search(answer, opening.end())
        if closing is None:  # no later opening tag can be closed either
            break
        last = answer[opening.end():closing.start()]
        first_start = opening.start() if first_start < 0 else first_start
        position = closing.end()
    return last, first_start


def tagged_action(answer: str) -> str | None:
    """The text of the last <|ACTION|>...<|END|> span, if any."""
    return tagged(answer)[0]


def labelled(answer: str, label: str) -> tuple[str | None, int]:
    """The value after the last 'LABEL:' line and where that line starts (-1 if none)."""
    found = [m for m in _LABELLED.finditer(answer) if m["label"].upper() == label]
    if not found:
        return None, -1
    last = found[-1]
    return last["value"], last.start()
