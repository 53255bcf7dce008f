"""MOSAIC's action-selector mode: the GUI owns the game, and the worker only chooses.

The GUI sends ``init_agent`` (game name, player id) and then, turn by turn,
``select_action`` with an observation, and where it has them the legal moves
(``info.legal_moves``) and a mask over the action space (``action_mask``); it plays the
``action`` of the answer directly when it is an integer (an index in the game's action
space), and otherwise reads ``action_str`` as a move (chess: UCI). Seen from the GUI
(``gym_gui/ui/main_window.py`` at 8dc806e): PettingZoo board games send the board and,
for chess, its legal moves; MultiGrid's parallel launches send the player's view image,
flattened, and nothing else.

This module reads a model's answer into such an action. The answer is read as MOSAIC's
worker reads it (its last line is the move, the lines before it the reasoning; a cot
agent's ``ACTION:`` marks the move), then matched against what the GUI stated is legal.
An answer that names no legal move gets the first legal move, said so in the event
(``valid: false``, ``defaulted``); with nothing legal stated and no action space known,
the answer is handed on as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# PettingZoo's classic games whose action space is the answer itself: a column, a cell.
NUMBERED_MOVES = {"connect_four_v3": 7, "tictactoe_v3": 9}
# mosaic-multigrid's action space (MOSAIC's MOSAIC_MULTIGRID_ACTIONS), with this project's
# names for the same actions.
MULTIGRID_ACTIONS = ("noop", "left", "right", "forward", "pickup", "drop", "toggle", "done")
MULTIGRID_ALIASES = {"still": 0, "turn left": 1, "turn right": 2, "move forward": 3,
                     "go forward": 3, "pick up": 4}
MULTIGRID_ENVS = ("mosaic_multigrid", "ini_multigrid")
# The GUI's families whose games it owns: a worker launched with one of these only chooses.
SELECTOR_ENVS = ("pettingzoo", "pettingzoo_classic", *MULTIGRID_ENVS)

_QUOTES = "\"'`*"
# The widest view described in words (MOSAIC's views are 3 to 7 cells across).
MAX_VIEW_SIDE = 15


@dataclass(frozen=True)
class Selection:
    action: int | str | None  # what the GUI plays: an index, a move, or None (nothing)
    action_str: str  # the move, as text
    valid: bool  # the answer named a legal move
    defaulted: str | None = None  # why the move is not the answer's, where it is not


def read_answer(text: str) -> tuple[str, str]:
    """(move, reasoning) of a model's answer, as MOSAIC's worker splits it: a cot
    agent's ``ACTION:`` marks the move; otherwise the last non-empty line is the move and
    the lines before it the reasoning. Quotes, bold marks and a final full stop around the
    move are dropped."""
    text = text.strip()
    if "ACTION:" in text:
        reasoning, _, move = text.rpartition("ACTION:")
    else:
        lines = [line for line in text.splitlines() if line.strip()]
        move = lines[-1] if lines else ""
        reasoning = "\n".join(lines[:-1])
    move = move.strip().strip(_QUOTES).strip().rstrip(".").strip(_QUOTES).strip()
    return move, reasoning.strip()


def legal_indices(mask: object) -> list[int] | None:
    """The action indices a mask allows (None where there is no usable mask)."""
    if not isinstance(mask, list) or not mask:
        return None
    return [index for index, allowed in enumerate(mask) if allowed is True or allowed == 1]


def _named(move: str, candidates: list[str]) -> str | None:
    """The candidate the move names: itself (any case), or the one candidate that appears
    in it as a whole word."""
    lowered = {candidate.lower(): candidate for candidate in candidates}
    if move.lower() in lowered:
        return lowered[move.lower()]
    found = {candidate for candidate in candidates
             if re.search(rf"(?<![\w]){re.escape(candidate)}(?![\w])", move, re.IGNORECASE)}
    return found.pop() if len(found) == 1 else None


def choose(move: str, legal_moves: list[str], mask: list[int] | None,
           action_names: tuple[str, ...] = (), numbered: int | None = None) -> Selection:
    """The action for the answer ``move``, given the legal moves the GUI sent (by their
    order in the action space where ``mask`` is given: the k-th legal move is the k-th
    allowed index), the indices ``mask`` allows, and what is known of the game's action
    space: its ``action_names`` (an index each) or ``numbered`` moves (0..n-1)."""
    if legal_moves:
        def action_of(chosen: str) -> int | str:
            position = legal_moves.index(chosen)
            if mask is not None and len(mask) == len(legal_moves):
                return mask[position]
            return int(chosen) if chosen.isdigit() else chosen

        chosen = _named(move, legal_moves)
        if chosen is not None:
            return Selection(action_of(chosen), chosen, True)
        first = legal_moves[0]
        return Selection(action_of(first), first, False,
                         f"the answer {move[:80]!r} names no legal move; the first legal "
                         "move is played")
    allowed = mask
    if allowed is None and numbered:
        allowed = list(range(numbered))
    if action_names:
        index = None
        chosen = _named(move, list(action_names))
        if chosen is not None:
            index = action_names.index(chosen)
        elif move.lower() in MULTIGRID_ALIASES:
            index = MULTIGRID_ALIASES[move.lower()]
        elif move.isdigit() and int(move) < len(action_names):
            index = int(move)
        if index is not None and (allowed is None or index in allowed):
            return Selection(index, action_names[index], True)
        fallback = allowed[0] if allowed else 0
        return Selection(fallback, action_names[fallback], False,
                         f"the answer {move[:80]!r} is not one of the actions "
                         f"{', '.join(action_names)}; {action_names[fallback]} is played")
    if allowed is not None:
        if move.isdigit() and int(move) in allowed:
            return Selection(int(move), move, True)
        if not allowed:
            return Selection(None, move, False, "nothing is legal: no action is chosen")
        return Selection(allowed[0], str(allowed[0]), False,
                         f"the answer {move[:80]!r} is not a legal action "
                         f"({', '.join(map(str, allowed[:20]))}); the first is played")
    # Nothing stated about what is legal: the answer is the move (the GUI checks it).
    return Selection(int(move) if move.isdigit() else move, move, bool(move),
                     None if move else "the answer names no move")


def observation_text(observation: object, game_name: str, env_name: str) -> str:
    """The observation as the model reads it. MultiGrid's GUI sends a player's view image
    flattened (type, colour, state per cell): it is described in words."""
    if env_name in MULTIGRID_ENVS and isinstance(observation, list):
        described = describe_flat_view(observation)
        if described:
            return described
    if isinstance(observation, str):
        return observation
    return str(observation)


def describe_flat_view(values: list) -> str | None:
    """Words for a mosaic-multigrid view image flattened to a list (None where the list is
    not such an image: its length is not 3 x a square of an odd side)."""
    from balrog_worker.multigrid.observations import carried, decode_view, offset_phrase

    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return None
    side = round((len(values) / 3) ** 0.5)
    if side % 2 == 0 or 3 * side * side != len(values) or side > MAX_VIEW_SIDE:
        return None
    image = np.asarray(values, dtype=np.int64).reshape(side, side, 3)
    try:
        seen, holding = decode_view(image), carried(image)
    except (ValueError, KeyError, IndexError):  # not mosaic-multigrid's encoding
        return None
    lines = [f"You see a {side}x{side} square ahead of you (you are at its bottom centre)."]
    for thing in seen:
        name = thing.kind if thing.kind != "agent" else f"{thing.colour} agent"
        if thing.kind in ("ball", "key", "box", "door", "goal", "objgoal"):
            name = f"{thing.colour} {thing.kind}"
        lines.append(f"- {name}: {offset_phrase(thing.forward, thing.right)}")
    if len(lines) == 1:
        lines.append("- nothing but open floor")
    lines.append(f"You are carrying {' '.join(holding[::-1])}." if holding
                 else "You are carrying nothing.")
    return "\n".join(lines)


def default_instructions(game_name: str, player: str, env_name: str) -> str:
    """This worker's instruction prompt for a game the GUI owns and names."""
    if env_name in MULTIGRID_ENVS:
        return (f"You are {player} in the multi-agent grid game {game_name}. Each turn you "
                "see the cells in front of you. Choose one action: "
                f"{', '.join(MULTIGRID_ACTIONS)}. Answer with the action only.")
    if game_name in NUMBERED_MOVES:
        top = NUMBERED_MOVES[game_name] - 1
        what = "column" if game_name.startswith("connect_four") else "cell"
        return (f"You are {player} in {game_name}. Each turn you get the board. Choose the "
                f"{what} to play, a number from 0 to {top}; answer with the number only.")
    return (f"You are {player} in {game_name}. Each turn you get the state of the game and "
            "the legal moves; answer with one legal move only, written as it is listed.")
