"""Every rule the MultiGrid prompts state, checked against mosaic-multigrid's real dynamics.

Each test sets up the situation a sentence of the prompt describes on the real
environment (positions, facing, who holds the ball), plays the action, and checks what the
sentence says happens; it also checks that the sentence is in the prompt the players get.
"""

import pytest
from mosaic_multigrid.core import Ball

from balrog_worker.multigrid import prompts
from balrog_worker.multigrid.game import ACTIONS, game_facts, make_env

EAST, SOUTH, WEST, NORTH = 0, 1, 2, 3
NOOP = ACTIONS["noop"]


@pytest.fixture
def soccer():
    wrapped = make_env("soccer")
    wrapped.reset(seed=0)
    env = wrapped.unwrapped
    # A known layout: green (team 1) attacks the goal at x = 14, blue (team 2) at x = 1.
    for agent, pos in zip(env.agents, [(3, 3), (6, 3), (10, 7), (12, 2)], strict=True):
        agent.state.pos, agent.state.dir = pos, NORTH
    yield wrapped, env
    wrapped.close()


def prompt(env, game: str, index: int = 0) -> str:
    return prompts.system_prompt(game_facts(env, game, index), 1)


def take_ball(env) -> Ball:
    """The loose ball, lifted off the field."""
    x, y = env._find_loose_ball_pos()
    ball = env.grid.get(x, y)
    env.grid.set(x, y, None)
    return ball


def step(wrapped, **moves):
    """One turn: ``moves`` maps 'a0'..'a3' to action names; the others wait."""
    actions = {agent.index: ACTIONS[moves.get(f"a{agent.index}", "noop")]
               for agent in wrapped.unwrapped.agents}
    return wrapped.step(actions)


def holders(env) -> list[int]:
    return [a.index for a in env.agents if a.state.carrying is not None]


def test_the_prompt_names_the_goals_the_environment_scores_in(soccer):
    _, env = soccer
    text = prompt(env, "soccer")
    attacked = sorted(p for p, team in zip(env.goal_pos, env.goal_index, strict=True)
                      if team != env.agents[0].team_index)
    assert f"attacks the goal at the east end (x = 14, y = {attacked[0][1]} to " in text
    assert [p[0] for p in attacked] == [14, 14, 14]


def test_walking_onto_the_attacked_goal_with_the_ball_scores(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_SCORING in prompt(env, "soccer")
    env.agents[0].state.pos, env.agents[0].state.dir = (13, 5), EAST
    env.agents[0].state.carrying = take_ball(env)
    step(wrapped, a0="forward")
    assert env.team_scores == {1: 1, 2: 0}


def test_dropping_the_ball_facing_the_goal_does_not_score(soccer):
    wrapped, env = soccer
    env.agents[0].state.pos, env.agents[0].state.dir = (13, 5), EAST
    env.agents[0].state.carrying = take_ball(env)
    step(wrapped, a0="drop")
    assert env.team_scores == {1: 0, 2: 0}


def test_a_new_ball_appears_after_a_goal(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_RESPAWN in prompt(env, "soccer")
    env.agents[0].state.pos, env.agents[0].state.dir = (13, 5), EAST
    env.agents[0].state.carrying = take_ball(env)
    step(wrapped, a0="forward")
    assert holders(env) == [] and env._find_loose_ball_pos() is not None


def test_the_first_team_to_two_goals_wins(soccer):
    wrapped, env = soccer
    facts = game_facts(env, "soccer", 0)
    assert f"The first team to {facts.goals_to_win} goals wins." in prompt(env, "soccer")
    for _ in range(facts.goals_to_win):
        env.agents[0].state.pos, env.agents[0].state.dir = (13, 5), EAST
        env.agents[0].state.carrying = take_ball(env)
        _, _, terminated, _, _ = step(wrapped, a0="forward")
        assert not any(terminated.values())
    assert env.team_scores == {1: 2, 2: 0}
    # mosaic-multigrid marks the players done within the scoring turn and reports it with
    # the next one, in which nobody can act any more.
    _, _, terminated, _, _ = step(wrapped, a2="forward", a3="forward")
    assert all(terminated.values()) and env.team_scores == {1: 2, 2: 0}


def test_drop_passes_to_the_teammate_wherever_they_are_whichever_way_you_face(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_PASS in prompt(env, "soccer")
    env.agents[1].state.pos = (12, 8)  # ten cells away, not in front
    env.agents[0].state.pos, env.agents[0].state.dir = (3, 1), NORTH  # facing the wall
    env.agents[0].state.carrying = take_ball(env)
    step(wrapped, a0="drop")
    assert holders(env) == [1]


def test_pickup_takes_the_loose_ball_in_front(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_PICKUP in prompt(env, "soccer")
    ball = take_ball(env)
    env.grid.set(3, 2, ball)  # in front of agent 0, who faces north from (3, 3)
    step(wrapped, a0="pickup")
    assert holders(env) == [0]


def test_pickup_steals_from_the_opponent_in_front_then_both_wait(soccer):
    wrapped, env = soccer
    facts = game_facts(env, "soccer", 0)
    text = prompt(env, "soccer")
    assert (f"After a steal, neither of the two players can steal again until "
            f"{facts.steal_cooldown} turns later.") in text
    env.agents[2].state.pos, env.agents[2].state.dir = (3, 2), SOUTH  # face to face
    env.agents[2].state.carrying = take_ball(env)
    step(wrapped, a0="pickup")
    assert holders(env) == [0]
    # The victim tries to steal it back every turn: it succeeds only on the cooldown's
    # last turn.
    stolen_back_on = None
    for turn in range(1, facts.steal_cooldown + 2):
        step(wrapped, a2="pickup")
        if holders(env) == [2]:
            stolen_back_on = turn
            break
    assert stolen_back_on == facts.steal_cooldown


def test_the_ball_cannot_be_taken_from_a_teammate(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_NO_TEAM_STEAL in prompt(env, "soccer")
    env.agents[1].state.pos = (3, 2)  # the teammate, in front of agent 0
    env.agents[1].state.carrying = take_ball(env)
    step(wrapped, a0="pickup")
    assert holders(env) == [1]


def test_only_one_player_holds_the_ball_at_a_time(soccer):
    wrapped, env = soccer
    assert prompts.SOCCER_ONE_HOLDER in prompt(env, "soccer")
    rng = __import__("random").Random(3)
    for _ in range(200):
        step(wrapped, **{f"a{i}": rng.choice(list(ACTIONS)) for i in range(4)})
        assert len(holders(env)) + (env._find_loose_ball_pos() is not None) == 1


def test_the_game_lasts_at_most_its_step_cap(soccer):
    wrapped, env = soccer
    facts = game_facts(env, "soccer", 0)
    assert f"The game lasts at most {facts.max_steps} turns." in prompt(env, "soccer")
    turns = 0
    while turns <= facts.max_steps:
        _, _, terminated, truncated, _ = step(wrapped)
        turns += 1
        if any(truncated.values()) or any(terminated.values()):
            break
    assert turns == facts.max_steps and all(truncated.values())


@pytest.fixture
def collect():
    wrapped = make_env("collect")
    wrapped.reset(seed=0)
    yield wrapped, wrapped.unwrapped
    wrapped.close()


def balls(env) -> int:
    return sum(1 for x in range(env.width) for y in range(env.height)
               if (obj := env.grid.get(x, y)) is not None and obj.type.value == "ball")


def test_collect_pickup_collects_the_ball_in_front_and_scores(collect):
    wrapped, env = collect
    assert prompts.COLLECT_PICKUP in prompt(env, "collect")
    agent = env.agents[0]
    x, y = env._find_loose_ball_pos() if hasattr(env, "_find_loose_ball_pos") else next(
        (x, y) for x in range(env.width) for y in range(env.height)
        if (o := env.grid.get(x, y)) is not None and o.type.value == "ball")
    before = balls(env)
    # Stand west of the ball facing east (move whoever stands there out of the way).
    for other in env.agents:
        if tuple(other.state.pos) == (x - 1, y):
            other.state.pos = (1, 1) if (x - 1, y) != (1, 1) else (2, 1)
    agent.state.pos, agent.state.dir = (x - 1, y), EAST
    _, rewards, _, _, _ = wrapped.step({a.index: ACTIONS["pickup"] if a.index == 0 else NOOP
                                        for a in env.agents})
    assert balls(env) == before - 1 and rewards[0] > 0 > min(rewards[1], rewards[2])


def test_collect_drop_does_nothing(collect):
    wrapped, env = collect
    assert "- drop: does nothing in this game" in prompt(env, "collect")
    before = ([tuple(a.state.pos) for a in env.agents], balls(env))
    wrapped.step({a.index: ACTIONS["drop"] for a in env.agents})
    assert ([tuple(a.state.pos) for a in env.agents], balls(env)) == before
