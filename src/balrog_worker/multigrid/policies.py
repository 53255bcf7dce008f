"""Fixed policies: Soccer's opponents, and the ``scripted`` baseline of the focal players.

The Soccer heuristic plays sensible football from the true state: the ball carrier runs
for the goal it attacks, the first player of the team goes for the ball (stealing it from
a carrier it faces), the second stays between the ball and its own goal unless the ball
comes into its half. In Collect a scripted player goes for the nearest ball. ``random``
picks uniformly among the actions.
"""

from __future__ import annotations

import random

import numpy as np

# mosaic-multigrid's action indices and direction order (right, down, left, up: clockwise).
NOOP, LEFT, RIGHT, FORWARD, PICKUP, DROP = 0, 1, 2, 3, 4, 5
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))


def ball_position(env) -> tuple[tuple[int, int] | None, int | None]:
    """Where the ball is and who carries it (agent index, or None when it is loose)."""
    for agent in env.agents:
        if agent.carrying is not None:
            return tuple(int(v) for v in agent.pos), agent.index
    for x in range(env.width):
        for y in range(env.height):
            obj = env.grid.get(x, y)
            if obj is not None and obj.type.value == "ball":
                return (x, y), None
    return None, None


def goal_cells(env, team: int) -> list[tuple[int, int]]:
    """The cells of the goal that ``team`` defends."""
    return [tuple(p) for p, t in zip(env.goal_pos, env.goal_index, strict=True) if t == team]


def _free(env, cell: tuple[int, int]) -> bool:
    obj = env.grid.get(*cell)
    if obj is not None and not obj.can_overlap():
        return False
    return all(tuple(int(v) for v in a.pos) != cell for a in env.agents)


def step_towards(env, agent, target: tuple[int, int]) -> int:
    """One action that brings ``agent`` closer to ``target``: turn to a direction that
    shortens the way, or move forward if it already faces one and the cell is free."""
    x, y = (int(v) for v in agent.pos)
    dx, dy = target[0] - x, target[1] - y
    wanted = []
    for size, direction in sorted(((abs(dx), (int(np.sign(dx)), 0)),
                                   (abs(dy), (0, int(np.sign(dy))))), reverse=True):
        if size:
            wanted.append(DIRECTIONS.index(direction))
    facing = int(agent.dir)
    for direction in wanted:
        ahead = (x + DIRECTIONS[direction][0], y + DIRECTIONS[direction][1])
        if direction == facing:
            if _free(env, ahead):
                return FORWARD
            continue
        if _free(env, ahead) or ahead == target:
            return RIGHT if (direction - facing) % 4 in (1, 2) else LEFT
    return LEFT if wanted else NOOP


def _face_and_take(env, agent, cell: tuple[int, int]) -> int:
    """Pick up (or steal) what is at ``cell`` when facing it, else get next to it."""
    x, y = (int(v) for v in agent.pos)
    if (x + DIRECTIONS[int(agent.dir)][0], y + DIRECTIONS[int(agent.dir)][1]) == cell:
        return PICKUP
    if abs(cell[0] - x) + abs(cell[1] - y) == 1:  # adjacent: turn to face it
        direction = DIRECTIONS.index((cell[0] - x, cell[1] - y))
        return RIGHT if (direction - int(agent.dir)) % 4 in (1, 2) else LEFT
    return step_towards(env, agent, cell)


def scripted_soccer(env, index: int) -> int:
    agent = env.agents[index]
    team = agent.team_index
    opponent_team = next(a.team_index for a in env.agents if a.team_index != team)
    target_goal = goal_cells(env, opponent_team)
    own_goal = goal_cells(env, team)
    ball, carrier = ball_position(env)
    position = tuple(int(v) for v in agent.pos)
    if carrier == index:
        return step_towards(env, agent, min(target_goal, key=lambda g: _distance(g, position)))
    if ball is None:
        return NOOP
    mates = [a.index for a in env.agents if a.team_index == team]
    is_first = mates.index(index) == 0
    own_x = own_goal[0][0]
    ball_in_own_half = abs(ball[0] - own_x) < env.width / 2
    if carrier is not None and env.agents[carrier].team_index == team:
        return step_towards(env, agent, target_goal[len(target_goal) // 2])  # support
    if is_first or ball_in_own_half:
        return _face_and_take(env, agent, ball)
    # Defender: hold a point between the ball and the middle of its own goal.
    middle = own_goal[len(own_goal) // 2]
    guard = ((middle[0] * 2 + ball[0]) // 3, (middle[1] * 2 + ball[1]) // 3)
    return step_towards(env, agent, guard) if guard != position else NOOP


def scripted_collect(env, index: int) -> int:
    """Go for the nearest ball and pick it up."""
    agent = env.agents[index]
    position = tuple(int(v) for v in agent.pos)
    balls = [(x, y) for x in range(env.width) for y in range(env.height)
             if (obj := env.grid.get(x, y)) is not None and obj.type.value == "ball"]
    if not balls:
        return NOOP
    return _face_and_take(env, agent, min(balls, key=lambda b: (_distance(b, position), b)))


SCRIPTED = {"soccer": scripted_soccer, "collect": scripted_collect}


def _distance(a: tuple[int, int], b: tuple[int, int]) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


def random_policy(rng: random.Random) -> int:
    return rng.choice((NOOP, LEFT, RIGHT, FORWARD, PICKUP, DROP))
