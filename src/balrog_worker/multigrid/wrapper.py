"""One multi-agent episode: the focal players driven by the model, the rest by a policy.

Soccer 2v2: the focal team is team 1; its two players are each an agent with its own
history, queried concurrently every step; the opponents follow a fixed policy (scripted
by default, or random). Collect: the three players, each on its own team, are all driven
by the model, and the group is measured by how many balls it collects and how it shares
them. Episode records carry per-agent and per-team returns, the result and the
coordination metrics of ``metrics``.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym

from balrog_worker.agents import invalid_action_note, make_agent
from balrog_worker.envs.base import Observation
from balrog_worker.evaluator import empty_usage, protocol_fields
from balrog_worker.multigrid import observations
from balrog_worker.multigrid.metrics import CollectTracker, SoccerTracker
from balrog_worker.multigrid.policies import SCRIPTED, goal_cells, random_policy
from balrog_worker.multigrid.prompts import GameFacts, assign_roles, system_prompt
from balrog_worker.seeding import derive_seed

GAMES = {
    "soccer": "MosaicMultiGrid-S-2v2-IndAgObs-v1",
    "collect": "MosaicMultiGrid-C-IndAgObs-v1",
}
# Text action -> mosaic-multigrid action index (toggle and done do nothing in these games).
ACTIONS = {"noop": 0, "turn left": 1, "turn right": 2, "forward": 3, "pickup": 4, "drop": 5}
ACTION_NAMES = {index: name for name, index in ACTIONS.items()}
DEFAULT_ACTION = "noop"
OPPONENTS = ("scripted", "random")


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


class Match:
    """Plays one multi-agent episode of a cell (see ``evaluator.CellRun``)."""

    def __init__(self, run, task: str):
        self.run = run
        self.config = run.config
        self.task = task

    def play(self, index: int, seed: int, steps: list[dict]) -> dict:
        config, cell = self.config, self.config.cell
        wrapped = make_env(self.task)
        env = wrapped.unwrapped
        try:
            wrapped.reset(seed=seed)
            team = env.agents[0].team_index
            focal = ([a.index for a in env.agents if a.team_index == team]
                     if self.task == "soccer" else [a.index for a in env.agents])
            level = cell.coordination_level
            roles = assign_roles(self.task, focal, config.role) if level == 3 else None
            agents = {}
            for i in focal:
                mates = {f"agent {j}": roles[j] for j in focal if j != i} if roles else None
                prompt = system_prompt(game_facts(env, self.task, i), level,
                                       roles[i] if roles else None, mates)
                agents[i] = make_agent(config, self.run.client, prompt, player=f"agent_{i}")
            tracker = (SoccerTracker if self.task == "soccer" else CollectTracker)(
                env, focal, roles)
            opponent_rng = random.Random(derive_seed("opponents", seed))
            returns = {a.index: 0.0 for a in env.agents}
            invalid = dict.fromkeys(focal, 0)
            notes = dict.fromkeys(focal, "")
            totals = empty_usage()
            terminated = truncated = False
            step = 0
            with ThreadPoolExecutor(max_workers=len(focal)) as pool:
                while not (terminated or truncated) and step != config.max_steps:
                    self.run.check_stop()
                    texts = {i: observations.describe(env, i, cell.observation_mode)
                             for i in focal}
                    futures = {i: pool.submit(agents[i].act, Observation(texts[i]),
                                              tuple(ACTIONS), derive_seed(seed, step, i),
                                              notes[i], self._oracle(env, i)) for i in focal}
                    decisions = {i: future.result() for i, future in futures.items()}
                    actions = {}
                    for i, decision in decisions.items():
                        valid = decision.candidate in ACTIONS
                        actions[i] = decision.candidate if valid else DEFAULT_ACTION
                        agents[i].record(actions[i])
                        invalid[i] += not valid
                        notes[i] = "" if valid or not config.agent.invalid_feedback else (
                            invalid_action_note(DEFAULT_ACTION))
                    moves = {i: ACTIONS[actions[i]] for i in focal}
                    for agent in env.agents:
                        if agent.index not in moves:
                            moves[agent.index] = (SCRIPTED[self.task](env, agent.index)
                                                  if config.opponent == "scripted"
                                                  else random_policy(opponent_rng))
                    _, rewards, terms, truncs, _ = wrapped.step(moves)
                    terminated = bool(any(terms.values()))
                    truncated = bool(any(truncs.values()))
                    for i, reward in rewards.items():
                        returns[i] += float(reward)
                    if self.task == "soccer":
                        tracker.update()
                    else:
                        tracker.update(rewards)
                    for i in focal:
                        usage = decisions[i].completion
                        call = self.run.account(totals, usage)
                        record = {
                            **self.run.keys, "episode_index": index, "step": step,
                            "agent_id": f"agent_{i}", "observation": decisions[i].shown,
                            "completion": usage.text, "reasoning": decisions[i].reasoning,
                            "candidate": decisions[i].candidate, "action": actions[i],
                            "valid": decisions[i].candidate in ACTIONS,
                            "reward": float(rewards[i]), "terminated": terminated,
                            "truncated": truncated, **call,
                        }
                        steps.append(record)
                        self.run.emit("step", record)
                    step += 1
            return self._episode(env, focal, returns, invalid, totals, tracker, step,
                                 terminated, truncated, roles)
        finally:
            wrapped.close()

    def _oracle(self, env, index: int):
        """The scripted policy's move for player ``index`` (read only by the scripted
        baseline), computed from the state before anyone moves this step."""
        move = ACTION_NAMES[SCRIPTED[self.task](env, index)]
        return lambda: move

    def _episode(self, env, focal, returns, invalid, totals, tracker, steps, terminated,
                 truncated, roles) -> dict:
        team = env.agents[focal[0]].team_index
        team_returns: dict[str, float] = {}
        for agent in env.agents:
            key = f"team_{agent.team_index}"
            team_returns[key] = team_returns.get(key, 0.0) + returns[agent.index]
        record = {
            "num_steps": steps,
            "episode_return": round(sum(returns[i] for i in focal), 6),
            "agent_returns": {f"agent_{i}": round(r, 6) for i, r in returns.items()},
            "team_returns": {k: round(v, 6) for k, v in team_returns.items()},
            "focal_agents": [f"agent_{i}" for i in focal],
            "roles": {f"agent_{i}": r for i, r in roles.items()} if roles else None,
            "invalid_actions": sum(invalid.values()),
            "invalid_by_agent": {f"agent_{i}": n for i, n in invalid.items()},
            **totals,
            "terminated": terminated, "truncated": truncated or not terminated,
            "failed": False, "error": None, "opponent": self.config.opponent
            if self.task == "soccer" else None, **protocol_fields(self.config),
        }
        metrics = tracker.summary()
        if self.task == "soccer":
            scores = env.team_scores
            rival = next(t for t in scores if t != team)
            goals_for, goals_against = scores[team], scores[rival]
            outcome = ("win" if goals_for > goals_against else
                       "loss" if goals_for < goals_against else "draw")
            progression = {"win": 1.0, "draw": 0.5, "loss": 0.0}[outcome]
            record.update(goals_for=goals_for, goals_against=goals_against, outcome=outcome)
        else:
            total = metrics["balls_total"] or 1
            progression = metrics["balls_collected"] / total
            record.update(outcome=None)
        record.update(progression=progression, success=progression >= 1.0,
                      end_reason="terminated" if terminated else "max_steps", **metrics)
        return record
