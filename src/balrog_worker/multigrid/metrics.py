"""Coordination measured in behaviour, from the true state at every step (RQ3).

Soccer (focal team against opponents): possession share, passes, steals, how often both
focal players chase the ball at once, mean distance between teammates, and at level 3 how
well each player keeps to its role (a defender in its own half, a forward in the
opponents'). Collect: balls collected per player and their shares, how often two players
head for the same ball (the same nearest ball), and at level 3 time spent in one's zone.
"""

from __future__ import annotations

from collections import Counter

from balrog_worker.multigrid.policies import ball_position


def _pos(agent) -> tuple[int, int]:
    return int(agent.pos[0]), int(agent.pos[1])


def _distance(a, b) -> int:
    return abs(a[0] - b[0]) + abs(a[1] - b[1])


class SoccerTracker:
    def __init__(self, env, focal: list[int], roles: dict[int, str] | None):
        self.env = env
        self.focal = focal
        self.team = env.agents[focal[0]].team_index
        self.roles = roles or {}
        own_x = next(p[0] for p, t in zip(env.goal_pos, env.goal_index, strict=True)
                     if t == self.team)
        self.own_half_west = own_x < env.width / 2
        self.steps = 0
        self.held_by_focal = self.held_by_opponents = 0
        self.passes = self.steals_for = self.steals_against = 0
        self.both_chasing = self.chase_opportunities = 0
        self.teammate_distance = 0.0
        self.in_role = Counter()
        self._last_carrier: int | None = None
        self._last_ball_distance = self._ball_distances()

    def _ball_distances(self) -> dict[int, int] | None:
        ball, _ = ball_position(self.env)
        if ball is None:
            return None
        return {i: _distance(_pos(self.env.agents[i]), ball) for i in self.focal}

    def _in_own_half(self, x: int) -> bool:
        middle = self.env.width / 2
        return x < middle if self.own_half_west else x >= middle

    def update(self) -> None:
        env = self.env
        self.steps += 1
        _, carrier = ball_position(env)
        if carrier is not None:
            if env.agents[carrier].team_index == self.team:
                self.held_by_focal += 1
            else:
                self.held_by_opponents += 1
            last = self._last_carrier
            if last is not None and last != carrier:
                last_focal = env.agents[last].team_index == self.team
                now_focal = env.agents[carrier].team_index == self.team
                if last_focal and now_focal:
                    self.passes += 1
                elif now_focal:
                    self.steals_for += 1
                elif last_focal:
                    self.steals_against += 1
            self._last_carrier = carrier
        distances = self._ball_distances()
        focal_holds = carrier is not None and env.agents[carrier].team_index == self.team
        if distances and self._last_ball_distance and not focal_holds:
            self.chase_opportunities += 1
            chasing = [distances[i] < self._last_ball_distance[i] for i in self.focal]
            self.both_chasing += all(chasing)
        self._last_ball_distance = distances
        positions = [_pos(env.agents[i]) for i in self.focal]
        if len(positions) >= 2:
            self.teammate_distance += _distance(positions[0], positions[1])
        for i in self.focal:
            role = self.roles.get(i)
            own_half = self._in_own_half(_pos(env.agents[i])[0])
            if (role == "defender" and own_half) or (role == "forward" and not own_half):
                self.in_role[i] += 1

    def summary(self) -> dict:
        held = self.held_by_focal + self.held_by_opponents
        steps = max(self.steps, 1)
        adherence = {f"agent_{i}": round(self.in_role[i] / steps, 4) for i in self.roles}
        return {
            "possession_share": round(self.held_by_focal / held, 4) if held else None,
            "passes": self.passes,
            "steals": self.steals_for,
            "steals_against": self.steals_against,
            "both_chasing_rate": (round(self.both_chasing / self.chase_opportunities, 4)
                                  if self.chase_opportunities else None),
            "mean_teammate_distance": round(self.teammate_distance / steps, 4),
            "role_adherence": (round(sum(adherence.values()) / len(adherence), 4)
                               if adherence else None),
            "role_adherence_by_agent": adherence or None,
        }


class CollectTracker:
    def __init__(self, env, focal: list[int], roles: dict[int, str] | None):
        self.env = env
        self.focal = focal
        self.roles = roles or {}
        self.balls = Counter()
        self.total_balls = len(self._balls())
        self.steps = self.contested = 0
        self.in_zone = Counter()

    def _balls(self) -> list[tuple[int, int]]:
        env = self.env
        return [(x, y) for x in range(env.width) for y in range(env.height)
                if (obj := env.grid.get(x, y)) is not None and obj.type.value == "ball"]

    def update(self, rewards: dict[int, float]) -> None:
        self.steps += 1
        for i, reward in rewards.items():
            if reward > 0:  # zero-sum: only the collector gains
                self.balls[i] += 1
        balls = self._balls()
        if balls:
            targets = [min(balls, key=lambda b: (_distance(_pos(self.env.agents[i]), b), b))
                       for i in self.focal]
            self.contested += len(set(targets)) < len(targets)
        third = self.env.width / 3
        zones = {"west": (0, third), "centre": (third, 2 * third),
                 "east": (2 * third, self.env.width)}
        for i, role in self.roles.items():
            low, high = zones[role]
            self.in_zone[i] += low <= _pos(self.env.agents[i])[0] < high

    def summary(self) -> dict:
        collected = sum(self.balls.values())
        steps = max(self.steps, 1)
        adherence = {f"agent_{i}": round(self.in_zone[i] / steps, 4) for i in self.roles}
        return {
            "balls_total": self.total_balls,
            "balls_collected": collected,
            "balls_by_agent": {f"agent_{i}": self.balls[i] for i in self.focal},
            "ball_share_by_agent": {f"agent_{i}": (round(self.balls[i] / collected, 4)
                                                   if collected else None)
                                    for i in self.focal},
            "contested_rate": round(self.contested / steps, 4),
            "role_adherence": (round(sum(adherence.values()) / len(adherence), 4)
                               if adherence else None),
            "role_adherence_by_agent": adherence or None,
        }
