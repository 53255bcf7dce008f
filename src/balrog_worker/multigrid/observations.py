"""Text observations for one agent of a MOSAIC multigrid game, decoded from its own view.

Written against ``mosaic-multigrid`` 7.0.0 (Soccer ``MosaicMultiGrid-S-2v2-IndAgObs-v1``,
Collect ``MosaicMultiGrid-C-IndAgObs-v1``). All ids come from the package's own tables
(``Type``, ``Color``, ``DIR_TO_VEC``, ``CARRYING_BALL_OFFSET``); none is hard-coded here.

The view, as the package builds it (``utils/obs.py``)
------------------------------------------------------
``obs[i]["image"]`` has shape ``(V, V, 3)`` and is indexed ``[column, row, channel]`` with the
channels ``(type, colour, state)``. The agent stands at the **bottom centre**,
``[V // 2, V - 1]``, looking towards row 0, and the view turns with it. So a cell
``[column, row]`` lies ``V - 1 - row`` steps forward and ``column - V // 2`` steps to the
right (negative: left); in the world (indexed ``[x, y]``) that is
``pos + forward * DIR_TO_VEC[dir] + right * DIR_TO_VEC[(dir + 1) % 4]``.

* Cells the agent cannot see (behind a wall) have type ``unseen``; open floor is ``empty``.
* The agent's own cell does not show the agent: it holds what the agent carries
  (``empty`` when nothing). Anything else on that cell (a goal under it, or another agent
  standing on it: agents may share a cell) is invisible to it.
* Another agent shows as type ``agent`` in its team's colour (``Color.from_index(team_index)``:
  team 1 green, team 2 blue, team 3 purple) with state = its absolute direction (0-3,
  ``Direction``) plus ``CARRYING_BALL_OFFSET`` (100) when it carries a ball. Which agent it
  is, is not encoded; where two agents share a cell only the higher-indexed one shows.
  An agent standing on a goal hides that goal cell.

Compass: ``dir`` 0 = east (+x), 1 = south (+y), 2 = west (-x), 3 = north (-y), matching
``DIR_TO_VEC``; north is row ``y = 0`` of the field.

Soccer: goal cells are ``objgoal`` coloured after the team that owns (defends) them. In the
2v2 field the green goal (team 1) is the column ``x = 1, y = 4..6`` (west end) and the blue goal
(team 2) is ``x = 14, y = 4..6`` (east end). A team scores by walking into a goal cell of
another team's colour while carrying the ball, so green attacks east and blue attacks west.
The score is ``env.team_scores``. Collect keeps no per-team score: the text gives the balls
still on the field (``env._remaining_balls``), which is all the env records.

What each mode reveals
----------------------
``egocentric`` (what this agent can know):
  its index and team colour; its absolute position ``(x, y)`` and compass facing (from the
  env's state, as a player would be told); the step count; the score (Soccer) or balls left
  (Collect); the goals' colours and which one it scores in (Soccer rules); what it carries
  (read from its own view cell); and every visible thing in its view, decoded from the view
  array alone, with its offset in steps forward and right/left: balls, goal cells and walls
  (straight runs of wall or goal cells are merged into one "from ... to ..." line, labelled
  with the edge of the field they form), and other agents as teammate or opponent by colour,
  with their compass facing and whether they carry the ball; plus how many view cells are
  hidden. A teammate appears only if it is in the view.
``visible_teammates``:
  all of the above, plus, for **every** teammate (in view or not), its index, its position
  relative to this agent in absolute compass steps ("3 steps north and 2 steps east of you")
  together with its absolute ``(x, y)``, its facing and whether it carries the ball. In
  Collect (three agents, three teams) there are no teammates: the mode adds only the line
  "You have no teammates."

``view_size``: by default the env's own view (3 in both games, overridable at ``gym.make``).
A smaller odd size crops the env's view to the ``view_size x view_size`` square whose bottom
centre is still the agent (the columns around the centre, the rows nearest the agent), keeping
the env's occlusion. A larger size cannot be produced from the view and is refused.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from mosaic_multigrid.core.constants import DIR_TO_VEC, Color, Direction, Type
from mosaic_multigrid.utils.obs import CARRYING_BALL_OFFSET, gen_obs_grid_encoding

from balrog_worker.vocab import OBSERVATION_MODES

COMPASS = {
    Direction.right: "east",
    Direction.down: "south",
    Direction.left: "west",
    Direction.up: "north",
}

# Kinds that form long straight lines (the field's boundary, 3-cell goals): one line per run.
_RUN_KINDS = frozenset({Type.wall.value, Type.objgoal.value})
_TYPE, _COLOUR, _STATE = 0, 1, 2


@dataclass(frozen=True)
class Seen:
    """One visible non-empty cell of an agent's view.

    ``forward`` steps ahead and ``right`` steps to the right (negative: left) of the viewer.
    ``facing`` (absolute ``Direction``) and ``has_ball`` are set for agents only, because the
    state channel carries them only for agents.
    """

    kind: str
    colour: str
    forward: int
    right: int
    facing: Direction | None = None
    has_ball: bool = False


# --------------------------------------------------------------------------- decoding


def decode_cell(encoding: Iterable[int]) -> tuple[str, str, Direction | None, bool]:
    """``(kind, colour, facing, has_ball)`` of one ``(type, colour, state)`` triple."""
    type_idx, colour_idx, state = (int(v) for v in encoding)
    kind = Type.from_index(type_idx).value
    colour = Color.from_index(colour_idx).value
    if kind != Type.agent.value:
        return kind, colour, None, False
    return kind, colour, Direction(state % CARRYING_BALL_OFFSET), state >= CARRYING_BALL_OFFSET


def view_offset(column: int, row: int, size: int) -> tuple[int, int]:
    """(forward, right) of view cell ``[column, row]``; the viewer is at ``[size//2, size-1]``."""
    return size - 1 - row, column - size // 2


def crop_view(image: np.ndarray, view_size: int | None = None) -> np.ndarray:
    """The ``view_size`` square of ``image`` that keeps the agent at its bottom centre."""
    size = image.shape[0]
    if view_size is None or view_size == size:
        return image
    if view_size % 2 == 0 or not 1 <= view_size <= size:
        raise ValueError(f"view_size must be odd and between 1 and {size}, not {view_size}")
    half, centre = view_size // 2, size // 2
    return image[centre - half:centre + half + 1, size - view_size:]


def decode_view(image: np.ndarray) -> list[Seen]:
    """Every visible, non-empty cell of an agent's view except its own, nearest first.

    Reads only the array (what the agent itself observes); unseen and empty cells are left
    out, and so is the agent's own cell, which holds what it carries (see ``carried``).
    """
    size = image.shape[0]
    hidden = {Type.unseen.value, Type.empty.value}
    seen = []
    for column in range(size):
        for row in range(size):
            forward, right = view_offset(column, row, size)
            if (forward, right) == (0, 0):
                continue
            kind, colour, facing, has_ball = decode_cell(image[column, row])
            if kind not in hidden:
                seen.append(Seen(kind, colour, forward, right, facing, has_ball))
    return sorted(seen, key=lambda s: (abs(s.forward) + abs(s.right), s.forward, s.right))


def carried(image: np.ndarray) -> tuple[str, str] | None:
    """``(kind, colour)`` of what the viewer carries, read from its own view cell."""
    size = image.shape[0]
    kind, colour, _, _ = decode_cell(image[size // 2, size - 1])
    return None if kind in (Type.empty.value, Type.unseen.value) else (kind, colour)


def hidden_cells(image: np.ndarray) -> int:
    """How many cells of the view the agent cannot see."""
    return int(np.count_nonzero(image[..., _TYPE] == Type.unseen.to_index()))


# --------------------------------------------------------------------------- geometry


def view_to_world(pos, direction: int, forward: int, right: int) -> tuple[int, int]:
    """Absolute ``(x, y)`` of the cell ``forward`` ahead and ``right`` to the right."""
    ahead, side = DIR_TO_VEC[int(direction)], DIR_TO_VEC[(int(direction) + 1) % 4]
    cell = np.asarray(pos) + forward * ahead + right * side
    return int(cell[0]), int(cell[1])


def compass_offset(origin, target) -> str:
    """'3 steps north and 2 steps east' from ``origin`` to ``target`` (y grows southward)."""
    dx, dy = int(target[0]) - int(origin[0]), int(target[1]) - int(origin[1])
    parts = []
    if dy:
        parts.append(_steps(abs(dy), "south" if dy > 0 else "north"))
    if dx:
        parts.append(_steps(abs(dx), "east" if dx > 0 else "west"))
    return " and ".join(parts)


def team_colour(team_index: int) -> str:
    """The colour the package gives a team's agents and goals."""
    return Color.from_index(team_index % len(Color)).value


# --------------------------------------------------------------------------- text pieces


def _steps(n: int, word: str) -> str:
    return f"{n} step{'' if n == 1 else 's'} {word}"


def offset_phrase(forward: int, right: int) -> str:
    """'2 steps forward and 1 step left'; the viewer's own cell is 'here'."""
    parts = []
    if forward:
        parts.append(_steps(forward, "forward"))
    if right:
        parts.append(_steps(abs(right), "right" if right > 0 else "left"))
    return " and ".join(parts) or "here"


def _runs(cells: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Split (forward, right) cells into straight runs: rows first, then columns, then singles.

    A wall seen as one line reads better than a list of its cells, and the ends of each run
    still give every cell exactly.
    """
    left = set(cells)
    runs = []
    for axis in (0, 1):  # 0: same forward (a row across the view); 1: same right (a column)
        for line in sorted({c[axis] for c in left}):
            along = sorted(c[1 - axis] for c in left if c[axis] == line)
            for run in _consecutive(along):
                if len(run) >= 2:
                    cells_ = [(line, v) if axis == 0 else (v, line) for v in run]
                    runs.append(cells_)
                    left -= set(cells_)
    runs.extend([c] for c in sorted(left))
    return sorted(runs, key=lambda r: min(abs(f) + abs(s) for f, s in r))


def _consecutive(values: list[int]) -> list[list[int]]:
    groups: list[list[int]] = []
    for v in values:
        if groups and v == groups[-1][-1] + 1:
            groups[-1].append(v)
        else:
            groups.append([v])
    return groups


def _edge_label(cells: list[tuple[int, int]], width: int, height: int) -> str:
    """Which edge of the field these absolute cells lie on, if they all share one."""
    tests = {
        "north": all(y == 0 for _, y in cells),
        "south": all(y == height - 1 for _, y in cells),
        "west": all(x == 0 for x, _ in cells),
        "east": all(x == width - 1 for x, _ in cells),
    }
    edges = [name for name, hit in tests.items() if hit]
    if len(edges) == 2:
        return f" ({edges[0]}-{edges[1]} corner of the field)"
    return f" ({edges[0]} edge of the field)" if edges else ""


def _agent_name(thing: Seen, own_colour: str) -> str:
    role = "a teammate" if thing.colour == own_colour else "an opponent"
    ball = "with the ball" if thing.has_ball else "without the ball"
    return f"{role} ({thing.colour} agent, facing {COMPASS[thing.facing]}, {ball})"


def _thing_name(thing: Seen, own_colour: str) -> str:
    if thing.kind == Type.agent.value:
        return _agent_name(thing, own_colour)
    if thing.kind == Type.objgoal.value:
        role = "your own goal" if thing.colour == own_colour else "score here"
        return f"{thing.colour} goal ({role})"
    if thing.kind == Type.wall.value:
        return "wall"
    return f"a {thing.colour} {thing.kind}"


def view_lines(env, agent, things: list[Seen]) -> list[str]:
    """One line per visible thing; straight runs of wall or goal cells become one line."""
    own = team_colour(agent.team_index)
    lines: list[tuple[int, str]] = []
    groups: dict[tuple[str, str], list[Seen]] = {}
    for thing in things:
        if thing.kind in _RUN_KINDS:
            groups.setdefault((thing.kind, thing.colour), []).append(thing)
            continue
        dist = abs(thing.forward) + abs(thing.right)
        phrase = offset_phrase(thing.forward, thing.right)
        lines.append((dist, f"- {_thing_name(thing, own)}: {phrase}"))
    for members in groups.values():
        name = _thing_name(members[0], own)
        for run in _runs([(m.forward, m.right) for m in members]):
            lines.append((min(abs(f) + abs(r) for f, r in run), _run_line(env, agent, name, run)))
    return [text for _, text in sorted(lines, key=lambda item: item[0])]


def _run_line(env, agent, name: str, run: list[tuple[int, int]]) -> str:
    world = [view_to_world(agent.pos, agent.dir, f, r) for f, r in run]
    label = _edge_label(world, env.width, env.height)
    if len(run) == 1:
        return f"- {name}{label}: {offset_phrase(*run[0])}"
    start, end = offset_phrase(*run[0]), offset_phrase(*run[-1])
    return f"- {name}{label}: {len(run)} cells in a line, from {start} to {end}"


# --------------------------------------------------------------------------- state pieces


def agent_view(env, agent_index: int, view_size: int | None = None) -> np.ndarray:
    """The agent's view array for the env's current state, exactly as ``gen_obs`` builds it.

    Rebuilt rather than taken from the last ``step`` return because Soccer scores (and
    respawns the ball) after it has already built the observations it returns.
    """
    env = env.unwrapped
    images = gen_obs_grid_encoding(
        env.grid.state, env.agent_states, env.agents[0].view_size,
        env.agents[0].see_through_walls,
    )
    return crop_view(images[agent_index], view_size)


def score_line(env, agent) -> str:
    """The score as the env keeps it (Soccer), or the balls left (Collect keeps no score)."""
    scores = getattr(env, "team_scores", None)
    if scores:
        own = agent.team_index
        parts = [f"{team_colour(own)} (your team) {scores.get(own, 0)}"]
        parts += [f"{team_colour(t)} {n}" for t, n in sorted(scores.items()) if t != own]
        target = getattr(env, "goals_to_win", None)
        tail = f" (first to {target} goals wins)" if target else ""
        return f"Score: {', '.join(parts)}{tail}."
    if hasattr(env, "_remaining_balls"):
        return f"Balls left on the field: {env._remaining_balls} of {sum(env.num_balls)}."
    return "No score is kept in this game."


def goals_line(env, agent) -> str | None:
    """Soccer rules: which goal is whose and where (None in games without goals)."""
    goal_pos = getattr(env, "goal_pos", None)
    if not goal_pos:
        return None
    cells: dict[int, list] = {}
    for pos, team in zip(goal_pos, env.goal_index, strict=True):
        cells.setdefault(team, []).append(pos)
    parts = []
    for team, where in sorted(cells.items()):
        xs, ys = sorted({p[0] for p in where}), sorted({p[1] for p in where})
        span = f"x={_span(xs)}, y={_span(ys)}"
        role = "yours to defend" if team == agent.team_index else "score by carrying the ball in"
        parts.append(f"the {team_colour(team)} goal at {span} ({role})")
    return "Goals: " + "; ".join(parts) + "."


def _span(values: list[int]) -> str:
    return str(values[0]) if len(values) == 1 else f"{values[0]}-{values[-1]}"


def _carrying_phrase(item: tuple[str, str] | None) -> str:
    if item is None:
        return "You are carrying nothing."
    kind, colour = item
    return f"You are carrying the {colour} {kind}."


def teammate_lines(env, agent) -> list[str]:
    """For ``visible_teammates``: where every teammate is, wherever it is."""
    mates = [a for a in env.agents if a.team_index == agent.team_index and a.index != agent.index]
    if not mates:
        return ["You have no teammates."]
    lines = ["Your teammates (shared positions, in view or not):"]
    for mate in mates:
        where = compass_offset(agent.pos, mate.pos)
        where = f"{where} of you" if where else "on your cell"
        ball = "with the ball" if _has_ball(mate) else "without the ball"
        x, y = (int(v) for v in mate.pos)
        state = " (out of play)" if mate.terminated else ""
        lines.append(
            f"- agent {mate.index} ({team_colour(mate.team_index)}){state} is {where}, "
            f"at x={x}, y={y}, facing {COMPASS[Direction(int(mate.dir))]}, {ball}."
        )
    return lines


def _has_ball(agent) -> bool:
    item = agent.carrying
    return item is not None and item.type == Type.ball


# --------------------------------------------------------------------------- describe


def describe(
    env, agent_index: int, mode: str, view_size: int | None = None,
    image: np.ndarray | None = None,
) -> str:
    """The text observation of agent ``agent_index`` (see the module docstring for the modes).

    ``image`` is the agent's full view as the env returned it; by default it is rebuilt from the
    env's current state (``agent_view``). ``view_size`` crops it (odd, at most the env's view).
    """
    if mode not in OBSERVATION_MODES:
        raise ValueError(f"mode must be one of {OBSERVATION_MODES}, not {mode!r}")
    env = env.unwrapped
    agent = env.agents[agent_index]
    view = agent_view(env, agent_index) if image is None else np.asarray(image)
    view = crop_view(view, view_size)
    x, y = (int(v) for v in agent.pos)
    lines = [
        f"You are agent {agent.index}, on the {team_colour(agent.team_index)} team.",
        f"You are at x={x}, y={y} (x grows eastward, y grows southward), "
        f"facing {COMPASS[Direction(int(agent.dir))]}.",
        _carrying_phrase(carried(view)),
        f"Step {env.step_count} of {env.max_steps}.",
        score_line(env, agent),
    ]
    goals = goals_line(env, agent)
    if goals:
        lines.append(goals)
    size = view.shape[0]
    lines.append(f"In your view ({size}x{size}, you at the bottom centre, looking forward):")
    lines += view_lines(env, agent, decode_view(view)) or ["- nothing but open floor"]
    hidden = hidden_cells(view)
    if hidden:
        lines.append(f"- {hidden} cell{'' if hidden == 1 else 's'} of your view hidden by walls")
    if mode == "visible_teammates":
        lines += teammate_lines(env, agent)
    return "\n".join(lines)
