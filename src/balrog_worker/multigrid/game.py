"""MultiGrid Soccer and Collect as games of the players' protocol (``envs.base.PlayerGame``).

Soccer 2v2: the focal team is team 1, its two players driven by agents; the other team
follows a policy inside the game (scripted by default, or random). Collect: the three
players, each on its own team, are all driven by agents, and the group is measured by how
many balls it collects and how it shares them. The game also keeps the coordination
metrics of ``metrics`` and reports them, with per-player and per-team returns and the
result, in its episode facts.
"""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np

from balrog_worker.envs.base import Observation, PlayerGame, Turn
from balrog_worker.multigrid import observations
from balrog_worker.multigrid.metrics import CollectTracker, SoccerTracker
from balrog_worker.multigrid.policies import SCRIPTED, goal_cells, random_policy
from balrog_worker.multigrid.prompts import GameFacts, assign_roles, system_prompt
from balrog_worker.seeding import derive_seed
from balrog_worker.vocab import opponent_model

GAMES = {
    "soccer": "MosaicMultiGrid-S-2v2-IndAgObs-v1",
    "collect": "MosaicMultiGrid-C-IndAgObs-v1",
}
# Text action -> mosaic-multigrid action index (toggle and done do nothing in these games).
ACTIONS = {"noop": 0, "turn left": 1, "turn right": 2, "forward": 3, "pickup": 4, "drop": 5}
ACTION_NAMES = {index: name for name, index in ACTIONS.items()}
DEFAULT_ACTION = "noop"
FRAME_TILE = 32  # pixels per cell of a player's view


def make_env(task: str):
    import mosaic_multigrid.envs  # noqa: F401 - registers the ids with gymnasium

    # Sparse rewards (goals and balls only): the dense shaping terms are for RL training.
    kwargs = {"reward_shaping": False} if task == "soccer" else {}
    return gym.make(GAMES[task], render_mode="rgb_array", disable_env_checker=True, **kwargs)


def _side(x: int, width: int) -> str:
    return "west" if x < width / 2 else "east"


def game_facts(env, task: str, index: int) -> GameFacts:
    """What agent ``index``'s prompt says about its game, read from the environment."""
    me = env.agents[index]

    def name(agent) -> str:
        return f"agent {agent.index} ({agent.color.name} team)"

    common = {"game": task, "width": env.width, "height": env.height,
              "agent_name": f"agent {index}", "team_colour": me.color.name,
              "teammates": tuple(f"agent {a.index}" for a in env.agents
                                 if a.team_index == me.team_index and a.index != index),
              "opponents": tuple(name(a) for a in env.agents if a.team_index != me.team_index),
              "max_steps": env.max_steps}
    if task != "soccer":
        return GameFacts(**common)
    rival = next(a.team_index for a in env.agents if a.team_index != me.team_index)

    def where(team: int) -> str:
        cells = goal_cells(env, team)
        xs, ys = {c[0] for c in cells}, sorted(c[1] for c in cells)
        return f"the {_side(cells[0][0], env.width)} end (x = {min(xs)}, y = {ys[0]} to {ys[-1]})"

    return GameFacts(**common, own_goal=where(me.team_index), target_goal=where(rival),
                     goals_to_win=env.goals_to_win, steal_cooldown=env.steal_cooldown)


def player_name(index: int) -> str:
    return f"agent_{index}"


class MultiGridGame(PlayerGame):
    family = "multigrid"

    def __init__(self, task: str, coordination_level: int = 1,
                 observation_mode: str = "egocentric", opponent: str = "scripted",
                 role: str | None = None):
        if task not in GAMES:
            raise ValueError(f"unknown MultiGrid task {task!r}; choose from {', '.join(GAMES)}")
        self.task = task
        self.level = coordination_level
        self.mode = observation_mode
        self.opponent = opponent
        self.role = role
        self._wrapped = make_env(task)
        self.env = self._wrapped.unwrapped
        # A model opponent: agents drive the other team too (players), the cell is scored
        # on the first team (focal).
        self._rival_model = opponent_model(opponent) is not None
        self.players: tuple[str, ...] = ()
        self._focal: list[int] = []
        self._driven: list[int] = []
        self._roles: dict[int, str] | None = None
        self._views: dict = {}

    def reset(self, seed: int) -> dict[str, Observation]:
        env = self.env
        self._views, _ = self._wrapped.reset(seed=seed)
        team = env.agents[0].team_index
        self._focal = ([a.index for a in env.agents if a.team_index == team]
                       if self.task == "soccer" else [a.index for a in env.agents])
        rivals = [a.index for a in env.agents if a.index not in self._focal]
        self._driven = self._focal + (rivals if self._rival_model else [])
        self.players = tuple(player_name(i) for i in self._driven)
        self._roles = None
        if self.level == 3:
            self._roles = assign_roles(self.task, self._focal, self.role)
            if self._rival_model:  # the other model's team gets the same roles
                self._roles.update(assign_roles(self.task, rivals, self.role))
        focal_roles = ({i: r for i, r in self._roles.items() if i in self._focal}
                       if self._roles else None)
        self._tracker = (SoccerTracker if self.task == "soccer" else CollectTracker)(
            env, self._focal, focal_roles)
        self._opponent_rng = random.Random(derive_seed("opponents", seed))
        self._returns = {a.index: 0.0 for a in env.agents}
        return self._observe()

    def _index(self, player: str) -> int:
        return int(player.removeprefix("agent_"))

    @property
    def focal(self) -> tuple[str, ...]:
        return tuple(player_name(i) for i in self._focal)

    def _observe(self) -> dict[str, Observation]:
        return {player_name(i): Observation(observations.describe(self.env, i, self.mode))
                for i in self._driven}

    def step(self, actions: dict[str, str]) -> Turn:
        env = self.env
        moves = {self._index(player): ACTIONS[action] for player, action in actions.items()}
        for agent in env.agents:
            if agent.index not in moves:
                moves[agent.index] = (SCRIPTED[self.task](env, agent.index)
                                      if self.opponent == "scripted"
                                      else random_policy(self._opponent_rng))
        self._views, rewards, terms, truncs, _ = self._wrapped.step(moves)
        for index, reward in rewards.items():
            self._returns[index] += float(reward)
        if self.task == "soccer":
            self._tracker.update()
        else:
            self._tracker.update(rewards)
        return Turn(self._observe(), {player_name(i): float(rewards[i]) for i in self._driven},
                    bool(any(terms.values())), bool(any(truncs.values())))

    def instructions(self, player: str) -> str:
        index = self._index(player)
        roles = self._roles
        team = self.env.agents[index].team_index
        mates = ({f"agent {j}": roles[j] for j in self._driven
                  if j != index and self.env.agents[j].team_index == team} if roles else None)
        return system_prompt(game_facts(self.env, self.task, index), self.level,
                             roles[index] if roles else None, mates)

    def actions(self, player: str) -> tuple[str, ...]:
        return tuple(ACTIONS)

    def default_action(self, player: str) -> str:
        return DEFAULT_ACTION

    def is_valid(self, player: str, action: str) -> bool:
        return action in ACTIONS

    def oracle_action(self, player: str) -> str:
        """The scripted policy's move for ``player``, from the state before anyone moves."""
        return ACTION_NAMES[SCRIPTED[self.task](self.env, self._index(player))]

    def call_key(self, player: str) -> object:
        return self._index(player)  # the player's index, as model calls were always seeded

    def field_frame(self) -> np.ndarray:
        """The whole field with every player on it (the episode viewer's overview)."""
        return self.env.grid.render(FRAME_TILE, agents=self.env.agents)

    def display(self) -> np.ndarray:
        """The whole field, every player on it (what MOSAIC's GUI shows of MultiGrid)."""
        return self.env.render()

    def frame(self, player: str) -> np.ndarray:
        """The player's own view, as its observation encodes it: the cells it sees, cut
        from the drawn field and laid out with the player at the bottom centre facing up;
        unseen cells are black."""
        from mosaic_multigrid.core.constants import Type

        env, agent, tile = self.env, self.env.agents[self._index(player)], FRAME_TILE
        size = agent.view_size
        field = env.grid.render(tile, agents=env.agents)
        seen = self._views[agent.index]["image"][..., 0] != Type.unseen.to_index()
        forward = np.array(agent.state.dir.to_vec())
        right = np.array((-forward[1], forward[0]))
        top_left = np.array(agent.state.pos) + forward * (size - 1) - right * (size // 2)
        view = np.zeros((size * tile, size * tile, 3), dtype=np.uint8)
        for row in range(size):
            for column in range(size):
                x, y = top_left - forward * row + right * column
                if seen[column, row] and 0 <= x < env.width and 0 <= y < env.height:
                    view[row * tile:(row + 1) * tile, column * tile:(column + 1) * tile] = (
                        field[y * tile:(y + 1) * tile, x * tile:(x + 1) * tile])
        return view

    def progression(self) -> float:
        if self.task == "soccer":
            return {"win": 1.0, "draw": 0.5, "loss": 0.0}[self._outcome()[0]]
        metrics = self._tracker.summary()
        return metrics["balls_collected"] / (metrics["balls_total"] or 1)

    def _outcome(self) -> tuple[str, int, int]:
        team = self.env.agents[self._focal[0]].team_index
        scores = self.env.team_scores
        rival = next(t for t in scores if t != team)
        goals_for, goals_against = scores[team], scores[rival]
        outcome = ("win" if goals_for > goals_against else
                   "loss" if goals_for < goals_against else "draw")
        return outcome, goals_for, goals_against

    def episode_info(self) -> dict:
        team_returns: dict[str, float] = {}
        for agent in self.env.agents:
            key = f"team_{agent.team_index}"
            team_returns[key] = team_returns.get(key, 0.0) + self._returns[agent.index]
        facts = {
            "agent_returns": {player_name(i): round(r, 6) for i, r in self._returns.items()},
            "team_returns": {k: round(v, 6) for k, v in team_returns.items()},
            "focal_agents": list(self.focal),
            "roles": ({player_name(i): r for i, r in self._roles.items()} if self._roles
                      else None),
            "opponent": self.opponent if self.task == "soccer" else None,
            "outcome": None,
        }
        if self.task == "soccer":
            outcome, goals_for, goals_against = self._outcome()
            facts.update(goals_for=goals_for, goals_against=goals_against, outcome=outcome)
        return {**facts, **self._tracker.summary()}

    def close(self) -> None:
        self._wrapped.close()
