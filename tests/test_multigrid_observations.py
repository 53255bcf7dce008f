"""MOSAIC multigrid text observations checked against the true state of real envs.

The checks below use their own geometry (written out, not imported from the module) and their
own text parser, so a decoder that puts the agent at the centre of its view, swaps the axes or
reads the wrong channel fails them (``test_a_wrong_geometry_is_caught`` shows it for the
geometry).
"""

from __future__ import annotations

import re

import gymnasium as gym
import mosaic_multigrid  # noqa: F401  (registers the MosaicMultiGrid-* ids)
import numpy as np
import pytest
from mosaic_multigrid.core.constants import Color, Type
from mosaic_multigrid.utils.obs import gen_obs_grid_vis_mask

from balrog_worker.multigrid.observations import (
    OBSERVATION_MODES,
    crop_view,
    decode_cell,
    describe,
)

SOCCER = "MosaicMultiGrid-S-2v2-IndAgObs-v1"
COLLECT = "MosaicMultiGrid-C-IndAgObs-v1"

# Written out by hand from the package's DIR_TO_VEC comments: 0 right/east (+x), 1 down/south
# (+y), 2 left/west (-x), 3 up/north (-y).
AHEAD = {0: (1, 0), 1: (0, 1), 2: (-1, 0), 3: (0, -1)}
COMPASS = {0: "east", 1: "south", 2: "west", 3: "north"}
TEAM_COLOUR = {1: "green", 2: "blue", 3: "purple"}


# --------------------------------------------------------------------------- env helpers


def make(env_id: str, **kwargs):
    return gym.make(env_id, **kwargs)


def random_states(env, seed: int, steps: int):
    """Yield (obs, scored) after reset and after each random joint action until the end.

    ``scored``: a goal was scored in that step; Soccer scores after building the observation it
    returns, so that observation is stale (checked separately in ``test_scoring``).
    """
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    yield obs, False
    base = env.unwrapped
    for _ in range(steps):
        before = dict(getattr(base, "team_scores", {}))
        actions = {a.index: int(rng.integers(8)) for a in base.agents}
        obs, _, terms, truncs, _ = env.step(actions)
        if any(terms.values()) or any(truncs.values()):
            return
        yield obs, dict(getattr(base, "team_scores", {})) != before


def world_cell(agent, forward: int, right: int) -> tuple[int, int]:
    fx, fy = AHEAD[int(agent.dir)]
    rx, ry = -fy, fx  # a quarter turn clockwise with y pointing down (south)
    x, y = agent.pos
    return int(x) + forward * fx + right * rx, int(y) + forward * fy + right * ry


def truth_at(env, x: int, y: int) -> dict | None:
    """What really occupies (x, y): the shown agent if any (the highest index of those standing
    there), else the grid object; out of bounds reads as wall, as in the package."""
    if not (0 <= x < env.width and 0 <= y < env.height):
        return {"kind": "wall", "colour": "grey"}
    here = [a for a in env.agents if tuple(int(v) for v in a.pos) == (x, y) and not a.terminated]
    if here:
        shown = max(here, key=lambda a: a.index)
        ball = shown.carrying is not None and shown.carrying.type == Type.ball
        return {"kind": "agent", "colour": TEAM_COLOUR[shown.team_index], "agent": shown,
                "facing": COMPASS[int(shown.dir)], "ball": ball}
    obj = env.grid.get(x, y)
    if obj is None:
        return None
    return {"kind": obj.type.value, "colour": obj.color.value}


def visibility(env, index: int) -> np.ndarray:
    """The package's own visibility mask of the agent's full view, [column, row]."""
    masks = gen_obs_grid_vis_mask(env.grid.state, env.agent_states, env.agents[0].view_size)
    return masks[index]


def in_crop(forward: int, right: int, size: int) -> bool:
    return forward <= size - 1 and abs(right) <= size // 2


# --------------------------------------------------------------------------- text parsing

OFFSET = re.compile(r"^(?:(\d+) steps? forward)?(?: and )?(?:(\d+) steps? (left|right))?$")
RUN = re.compile(r"^(?P<n>\d+) cells in a line, from (?P<a>.+) to (?P<b>.+)$")
AGENT = re.compile(
    r"^(?P<role>a teammate|an opponent) \((?P<colour>\w+) agent, facing (?P<facing>\w+), "
    r"(?P<ball>with|without) the ball\)$"
)
GOAL = re.compile(r"^(?P<colour>\w+) goal \((?P<role>your own goal|score here)\)(?: \(.+\))?$")
WALL = re.compile(r"^wall(?: \((?P<edge>.+)\))?$")
OTHER = re.compile(r"^a (?P<colour>\w+) (?P<kind>\w+)$")
MATE = re.compile(
    r"^- agent (?P<i>\d+) \((?P<colour>\w+)\) is (?P<where>.+?), at x=(?P<x>\d+), y=(?P<y>\d+), "
    r"facing (?P<facing>\w+), (?P<ball>with|without) the ball\.$"
)


def parse_offset(text: str) -> tuple[int, int]:
    match = OFFSET.match(text)
    assert match and text, f"bad offset {text!r}"
    right = int(match[2] or 0) * (1 if match[3] == "right" else -1)
    return int(match[1] or 0), right


def parse_name(name: str) -> dict:
    if match := AGENT.match(name):
        return {"kind": "agent", "colour": match["colour"], "facing": match["facing"],
                "ball": match["ball"] == "with", "teammate": match["role"] == "a teammate"}
    if match := GOAL.match(name):
        return {"kind": "objgoal", "colour": match["colour"], "own": match["role"] != "score here"}
    if match := WALL.match(name):
        return {"kind": "wall", "colour": "grey", "edge": match["edge"]}
    match = OTHER.match(name)
    assert match, f"unparseable name {name!r}"
    return {"kind": match["kind"], "colour": match["colour"]}


def parse_view_lines(text: str) -> tuple[list[tuple[dict, int, int]], int]:
    """((thing, forward, right) for every described cell, hidden-cell count)."""
    lines = text.split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("In your view"))
    cells, hidden = [], 0
    for line in lines[start + 1:]:
        if not line.startswith("- ") or MATE.match(line):
            break
        body = line[2:]
        if body == "nothing but open floor":
            continue
        if match := re.fullmatch(r"(\d+) cells? of your view hidden by walls", body):
            hidden = int(match[1])
            continue
        name, offset = body.split(": ", 1)
        thing = parse_name(name)
        if run := RUN.match(offset):
            (fa, ra), (fb, rb) = parse_offset(run["a"]), parse_offset(run["b"])
            assert fa == fb or ra == rb, f"run not straight: {line}"
            n = int(run["n"])
            assert max(abs(fb - fa), abs(rb - ra)) + 1 == n, line
            for k in range(n):
                cells.append((thing, fa + k * np.sign(fb - fa), ra + k * np.sign(rb - ra)))
        else:
            cells.append((thing, *parse_offset(offset)))
    return [(t, int(f), int(r)) for t, f, r in cells], hidden


def parse_header(text: str) -> dict:
    pos = re.search(r"You are at x=(\d+), y=(\d+) \(.*\), facing (\w+)\.", text)
    carrying = re.search(r"You are carrying (nothing|the (\w+) (\w+))\.", text)
    assert pos and carrying, text
    return {"pos": (int(pos[1]), int(pos[2])), "facing": pos[3],
            "carrying": None if carrying[1] == "nothing" else (carrying[3], carrying[2])}


def parse_score(text: str) -> dict[str, int]:
    if match := re.search(r"Balls left on the field: (\d+) of (\d+)\.", text):
        return {"left": int(match[1]), "total": int(match[2])}
    match = re.search(r"Score: (\w+) \(your team\) (\d+), (\w+) (\d+)", text)
    assert match, text
    return {match[1]: int(match[2]), match[3]: int(match[4])}


# --------------------------------------------------------------------------- checks


def check_description(env, index: int, text: str, size: int) -> None:
    """Every statement of ``text`` about agent ``index``'s state and view is true."""
    agent = env.agents[index]
    header = parse_header(text)
    assert header["pos"] == tuple(int(v) for v in agent.pos)
    assert header["facing"] == COMPASS[int(agent.dir)]
    held = agent.carrying
    assert header["carrying"] == (None if held is None else (held.type.value, held.color.value))

    score = parse_score(text)
    if hasattr(env, "team_scores"):
        assert score == {TEAM_COLOUR[t]: n for t, n in env.team_scores.items()}
    else:
        assert score == {"left": env._remaining_balls, "total": sum(env.num_balls)}

    described, hidden = parse_view_lines(text)
    vis = visibility(env, index)
    full = vis.shape[0]
    offsets = [(f, r) for _, f, r in described]
    assert len(offsets) == len(set(offsets)), f"a cell is described twice:\n{text}"
    for thing, forward, right in described:
        assert in_crop(forward, right, size) and (forward, right) != (0, 0), text
        assert vis[full // 2 + right, full - 1 - forward], f"invisible cell described:\n{text}"
        truth = truth_at(env, *world_cell(agent, forward, right))
        assert truth is not None, f"{thing} at ({forward}, {right}) but it is empty:\n{text}"
        assert (thing["kind"], thing["colour"]) == (truth["kind"], truth["colour"]), text
        if truth["kind"] == "agent":
            assert thing["facing"] == truth["facing"] and thing["ball"] == truth["ball"], text
            assert thing["teammate"] == (truth["agent"].team_index == agent.team_index), text
        if truth["kind"] == "objgoal":
            assert thing["own"] == (truth["colour"] == TEAM_COLOUR[agent.team_index])

    seen_hidden = 0
    for column in range(full):
        for row in range(full):
            forward, right = full - 1 - row, column - full // 2
            if not in_crop(forward, right, size):
                continue
            if not vis[column, row]:
                seen_hidden += 1
                continue
            if (forward, right) == (0, 0):
                continue
            if truth_at(env, *world_cell(agent, forward, right)) is not None:
                assert (forward, right) in offsets, f"{forward, right} not described:\n{text}"
    assert hidden == seen_hidden


def check_decoder(env, index: int, image: np.ndarray, offset) -> list[str]:
    """Mismatches between the decoded view and the true world, the view cell -> world cell map
    being ``offset(column, row, size) -> (forward, right)``."""
    agent, size = env.agents[index], image.shape[0]
    vis = visibility(env, index)
    problems = []
    for column in range(size):
        for row in range(size):
            kind, colour, facing, ball = decode_cell(image[column, row])
            forward, right = offset(column, row, size)
            if not vis[column, row]:
                if kind != "unseen":
                    problems.append(f"[{column},{row}] should be unseen, is {kind}")
                continue
            if (forward, right) == (0, 0):
                held = agent.carrying
                want = ("empty", "red") if held is None else (held.type.value, held.color.value)
                if (kind, colour) != want:
                    problems.append(f"own cell shows {kind} {colour}, carrying {want}")
                continue
            truth = truth_at(env, *world_cell(agent, forward, right))
            want = ("empty", None) if truth is None else (truth["kind"], truth["colour"])
            if kind != want[0] or (truth is not None and colour != want[1]):
                problems.append(f"[{column},{row}] decoded {kind} {colour}, world has {want}")
            elif kind == "agent" and (
                    COMPASS[int(facing)] != truth["facing"] or ball != truth["ball"]):
                problems.append(f"[{column},{row}] agent facing/ball wrong")
    return problems


def correct_offset(column: int, row: int, size: int) -> tuple[int, int]:
    return size - 1 - row, column - size // 2


def centre_offset(column: int, row: int, size: int) -> tuple[int, int]:
    """The old MOSAIC mistake: the agent at the centre of its view."""
    return size // 2 - row, column - size // 2


def swapped_offset(column: int, row: int, size: int) -> tuple[int, int]:
    """Axes swapped: the view read as [row, column]."""
    return size - 1 - column, row - size // 2


# --------------------------------------------------------------------------- tests

CASES = [  # env id, make kwargs, seeds, steps, view sizes passed to describe
    (SOCCER, {}, (0, 1, 2, 3), 70, (None,)),
    (SOCCER, {"view_size": 7}, (4, 5), 70, (None, 5, 3)),
    (COLLECT, {}, (0, 1, 2, 3), 70, (None,)),
    (COLLECT, {"view_size": 7}, (4, 5), 70, (None, 5)),
]


@pytest.mark.parametrize(("env_id", "kwargs", "seeds", "steps", "sizes"), CASES)
def test_descriptions_match_true_state(env_id, kwargs, seeds, steps, sizes):
    env = make(env_id, **kwargs)
    base = env.unwrapped
    checked = 0
    for seed in seeds:
        for _obs, _scored in random_states(env, seed, steps):
            for agent in base.agents:
                for mode in OBSERVATION_MODES:
                    for size in sizes:
                        text = describe(env, agent.index, mode, view_size=size)
                        check_description(base, agent.index, text, size or base.agents[0].view_size)
                        checked += 1
    assert checked > 500


@pytest.mark.parametrize(("env_id", "kwargs"), [(SOCCER, {}), (SOCCER, {"view_size": 7})])
def test_teammates_by_mode(env_id, kwargs):
    env = make(env_id, **kwargs)
    base = env.unwrapped
    in_view = out_of_view = 0
    for seed in (10, 11, 12):
        for _obs, _scored in random_states(env, seed, 80):
            for agent in base.agents:
                mates = [a for a in base.agents
                         if a.team_index == agent.team_index and a.index != agent.index]
                ego = describe(env, agent.index, "egocentric")
                described, _ = parse_view_lines(ego)
                mate_cells = {(f, r) for t, f, r in described
                              if t["kind"] == "agent" and t["teammate"]}
                # A teammate is only mentioned where one really shows in the view.
                vis, size = visibility(base, agent.index), base.agents[0].view_size
                shown = set()
                for forward, right in mate_cells:
                    assert vis[size // 2 + right, size - 1 - forward]
                    truth = truth_at(base, *world_cell(agent, forward, right))
                    assert truth["agent"] in mates
                    shown.add(truth["agent"].index)
                assert "agent 1 (" not in ego and "Your teammates" not in ego
                if not mate_cells:
                    assert "teammate" not in ego
                in_view += len(shown)
                out_of_view += len(mates) - len(shown)

                full = describe(env, agent.index, "visible_teammates")
                assert full.startswith(ego)
                lines = [MATE.match(line) for line in full.split("\n")]
                lines = {int(m["i"]): m for m in lines if m}
                assert set(lines) == {m.index for m in mates}
                for mate in mates:
                    line = lines[mate.index]
                    dx = int(mate.pos[0]) - int(agent.pos[0])
                    dy = int(mate.pos[1]) - int(agent.pos[1])
                    assert (int(line["x"]), int(line["y"])) == tuple(int(v) for v in mate.pos)
                    assert compass_delta(line["where"]) == (dx, dy)
                    assert line["colour"] == TEAM_COLOUR[mate.team_index]
                    assert line["facing"] == COMPASS[int(mate.dir)]
                    holds = mate.carrying is not None and mate.carrying.type == Type.ball
                    assert (line["ball"] == "with") == holds
    assert out_of_view > 0
    if kwargs:  # a 3x3 view rarely catches the teammate in random play; a 7x7 one does
        assert in_view > 0


def compass_delta(where: str) -> tuple[int, int]:
    if where == "on your cell":
        return 0, 0
    dx = dy = 0
    for n, word in re.findall(r"(\d+) steps? (north|south|east|west)", where):
        dy += {"north": -int(n), "south": int(n)}.get(word, 0)
        dx += {"west": -int(n), "east": int(n)}.get(word, 0)
    assert where.endswith(" of you"), where
    return dx, dy


def test_collect_has_no_teammates():
    env = make(COLLECT)
    env.reset(seed=3)
    for i in range(3):
        ego = describe(env, i, "egocentric")
        full = describe(env, i, "visible_teammates")
        assert full == ego + "\nYou have no teammates."
        assert "teammate" not in ego


@pytest.mark.parametrize(("env_id", "kwargs"), [
    (SOCCER, {}), (SOCCER, {"view_size": 7}), (COLLECT, {}), (COLLECT, {"view_size": 5}),
])
def test_decoder_agrees_with_grid(env_id, kwargs):
    env = make(env_id, **kwargs)
    base = env.unwrapped
    for seed in (20, 21):
        for obs, scored in random_states(env, seed, 60):
            if scored:
                continue
            for agent in base.agents:
                image = obs[agent.index]["image"]
                assert check_decoder(base, agent.index, image, correct_offset) == []


def test_a_wrong_geometry_is_caught():
    """The checks are strong enough to reject the classic mistakes."""
    env = make(SOCCER, view_size=7)
    base = env.unwrapped
    wrong = {"centre": 0, "swapped": 0}
    for obs, _ in random_states(env, 30, 20):
        for agent in base.agents:
            image = obs[agent.index]["image"]
            wrong["centre"] += bool(check_decoder(base, agent.index, image, centre_offset))
            wrong["swapped"] += bool(check_decoder(base, agent.index, image, swapped_offset))
    assert wrong["centre"] > 0 and wrong["swapped"] > 0


def test_colour_and_type_ids_come_from_the_package():
    assert decode_cell((Type.ball.to_index(), Color.red.to_index(), 0))[:2] == ("ball", "red")
    kind, colour, facing, ball = decode_cell((Type.agent.to_index(), Color.blue.to_index(), 103))
    assert (kind, colour, int(facing), ball) == ("agent", "blue", 3, True)
    assert decode_cell((Type.objgoal.to_index(), Color.green.to_index(), 0))[0] == "objgoal"


def test_crop_keeps_agent_at_bottom_centre():
    image = np.arange(7 * 7 * 3).reshape(7, 7, 3)
    small = crop_view(image, 3)
    assert small.shape == (3, 3, 3)
    assert (small[1, 2] == image[3, 6]).all()  # the agent's own cell
    assert (small[0, 0] == image[2, 4]).all()  # 2 forward, 1 left
    with pytest.raises(ValueError):
        crop_view(image, 9)
    with pytest.raises(ValueError):
        crop_view(image, 4)


def test_scoring():
    """A goal is reported, and the view is rebuilt rather than taken from the stale obs."""
    env = make(SOCCER)
    base = env.unwrapped
    env.reset(seed=7)
    scorer = base.agents[0]  # green: scores in the blue goal at x=14
    ball_cell = next((x, y) for x in range(base.width) for y in range(base.height)
                     if (obj := base.grid.get(x, y)) is not None and obj.type == Type.ball)
    ball = base.grid.get(*ball_cell)
    base.grid.set(*ball_cell, None)
    scorer.state.carrying = ball
    scorer.state.pos = (13, 5)
    scorer.state.dir = 0
    for other in base.agents[1:]:  # out of the way
        other.state.pos = (3 + other.index, 2)
    text = describe(env, 0, "egocentric")
    assert "You are carrying the red ball." in text
    assert ("- blue goal (score here): 3 cells in a line, from 1 step forward and 1 step left "
            "to 1 step forward and 1 step right") in text
    obs, *_ = env.step({0: 3, 1: 0, 2: 0, 3: 0})
    assert base.team_scores == {1: 1, 2: 0}
    text = describe(env, 0, "egocentric")
    check_description(base, 0, text, 3)
    assert "Score: green (your team) 1, blue 0" in text
    assert "You are carrying nothing." in text
    # The obs returned by that step was built before the goal: it still shows the ball held.
    stale = describe(env, 0, "egocentric", image=obs[0]["image"])
    assert "You are carrying the red ball." in stale
