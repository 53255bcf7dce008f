"""From a model's answer to an action candidate, tolerant of formatting noise."""

from __future__ import annotations

import re

_FENCE = re.compile(r"^```[\w-]*\s*|\s*```$")
_EDGE_NOISE = " \t\r\n\"'`*.,;:!?()[]{}<>"


def normalise(text: str) -> str:
    """Lower-case, fences, quotes, markup and edge punctuation removed, spaces collapsed."""
    text = _FENCE.sub("", text.strip())
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


TAGGED_ACTION = re.compile(r"<\|ACTION\|>(.*?)<\|END\|>", re.DOTALL | re.IGNORECASE)
_LABELLED = re.compile(r"^\W*(?P<label>ACTION|PLAN)\W*:\s*(?P<value>.*)$",
                       re.IGNORECASE | re.MULTILINE)


def tagged_action(answer: str) -> str | None:
    """The text of the last <|ACTION|>...<|END|> span, if any."""
    spans = TAGGED_ACTION.findall(answer)
    return spans[-1] if spans else None


def labelled(answer: str, label: str) -> tuple[str | None, int]:
    """The value after the last 'LABEL:' line and where that line starts (-1 if none)."""
    found = [m for m in _LABELLED.finditer(answer) if m["label"].upper() == label]
    if not found:
        return None, -1
    last = found[-1]
    return last["value"], last.start()
