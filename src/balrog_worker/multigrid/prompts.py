"""System prompts for the multi-agent games at three coordination levels.

Level 1 (emergent): the rules, the field and the goal only; any teamwork must emerge.
Level 2 (basic hints): level 1 plus general cooperation advice.
Level 3 (role-based): level 1 plus an explicit role for this agent, the rules of that
role, and the roles of its teammates.

Team colours, goals and field sizes are read from the environment by the caller
(``GameFacts``), never assumed, so the text always names what the game really has.
"""

from __future__ import annotations

from dataclasses import dataclass

from balrog_worker.vocab import COORDINATION_LEVELS, roles_of


@dataclass(frozen=True)
class GameFacts:
    """What the prompt states about one agent's game, taken from the true environment."""

    game: str  # "soccer" or "collect"
    width: int
    height: int
    agent_name: str  # e.g. "agent 0"
    team_colour: str
    teammates: tuple[str, ...]  # names of the other agents of the same team
    opponents: tuple[str, ...]  # "agent 2 (red team)", ...
    own_goal: str = ""  # where the goal this team defends is, e.g. "the west end (x = 1)"
    target_goal: str = ""  # where it scores
    goals_to_win: int = 0
    max_steps: int = 0
    steal_cooldown: int = 0  # soccer: turns neither player of a steal can steal again


def assign_roles(game: str, players: list[int], first: str | None = None) -> dict[int, str]:
    """Level 3 roles: forward then defender in Soccer, the west, centre and east zones in
    Collect; ``first`` (MOSAIC's ``role``) gives the first player its role, the others
    take the remaining ones in order."""
    roles = list(roles_of(game))
    if first is not None:
        roles.remove(first)
        roles.insert(0, first)
    return {player: roles[k % len(roles)] for k, player in enumerate(players)}


# What each action does, per game, as mosaic-multigrid 7.0 plays it (each statement is
# tested against the environment in tests/test_multigrid_rules.py).
ACTIONS_TEXT = {
    "soccer": (
        "The actions you can take:\n"
        "- turn left: turn 90 degrees to your left\n"
        "- turn right: turn 90 degrees to your right\n"
        "- forward: move one cell in the direction you face\n"
        "- pickup: take the loose ball in front of you, or steal the ball from the opponent "
        "in front of you\n"
        "- drop: pass the ball to your teammate, wherever they are on the field\n"
        "- noop: stay where you are this turn"
    ),
    "collect": (
        "The actions you can take:\n"
        "- turn left: turn 90 degrees to your left\n"
        "- turn right: turn 90 degrees to your right\n"
        "- forward: move one cell in the direction you face\n"
        "- pickup: collect the ball in front of you\n"
        "- drop: does nothing in this game\n"
        "- noop: stay where you are this turn"
    ),
}


def _rules(facts: GameFacts) -> str:
    field = (f"The field is {facts.width} cells wide (x from 0 in the west to "
             f"{facts.width - 1} in the east) and {facts.height} cells tall (y from 0 in the "
             f"north to {facts.height - 1} in the south), walled all round.")
    you = f"You are {facts.agent_name}, of the {facts.team_colour} team."
    if facts.game == "soccer":
        mates = ", ".join(facts.teammates) or "nobody"
        return (
            f"You are playing MultiGrid Soccer, two against two, seen from above. {field} "
            f"{you} Your teammate: {mates}. Opponents: {', '.join(facts.opponents)}.\n\n"
            f"Your team defends the goal at {facts.own_goal} and attacks the goal at "
            f"{facts.target_goal}. {SOCCER_SCORING} The first team to {facts.goals_to_win} "
            f"goals wins. {SOCCER_RESPAWN} The game lasts at most {facts.max_steps} "
            "turns.\n\n"
            f"{SOCCER_ONE_HOLDER} {SOCCER_PICKUP} After a steal, neither of the two players "
            f"can steal again until {facts.steal_cooldown} turns later. "
            f"{SOCCER_NO_TEAM_STEAL} {SOCCER_PASS}"
        )
    rivals = ", ".join(facts.opponents)
    return (
        f"You are playing MultiGrid Collect, seen from above. {field} {you} The other "
        f"players ({rivals}) each play for themselves. {COLLECT_PICKUP} Every ball you "
        "collect scores for you and counts against the others. The game ends when all "
        f"balls are collected or after {facts.max_steps} turns."
    )


# The rule sentences, one constant each, so the test of each names what it checks.
SOCCER_SCORING = ("You score by walking onto a cell of the goal you attack while holding "
                  "the ball; dropping the ball, even facing the goal, does not score.")
SOCCER_RESPAWN = "After a goal, a new ball appears on a free cell of the field."
SOCCER_ONE_HOLDER = "Only one player holds the ball at a time."
SOCCER_PICKUP = ("pickup takes the loose ball from the cell in front of you, or steals the "
                 "ball from an opponent in front of you who holds it.")
SOCCER_NO_TEAM_STEAL = "You cannot take the ball from your teammate."
SOCCER_PASS = ("drop passes the ball to your teammate wherever they are on the field, "
               "whichever way you face.")
COLLECT_PICKUP = "Balls lie on the field: face a ball and pick it up to collect it."


def _hints(facts: GameFacts) -> str:
    if facts.game == "soccer":
        return (
            "Teamwork advice:\n"
            "- Spread out: do not both chase the ball; one of you should stay back.\n"
            "- Pass to a teammate who is closer to the goal or less marked.\n"
            "- Predict where the opponents are going and cut off their path to your goal.\n"
            "- When your teammate has the ball, move to where they can pass to you."
        )
    return (
        "Advice:\n"
        "- Do not chase the same ball as another player: go for balls nobody is closer to.\n"
        "- Keep to a part of the field where there are balls and few players.\n"
        "- Plan a short route that collects several nearby balls in turn."
    )


def _role_rules(facts: GameFacts, role: str, teammate_roles: dict[str, str]) -> str:
    mates = "; ".join(f"{name} is the {r}" for name, r in teammate_roles.items())
    if facts.game == "soccer":
        rules = {
            "forward": (
                "Your role: FORWARD. Go for the ball, keep it, and carry it to the goal at "
                f"{facts.target_goal}. When the defender passes to you, move up the field. "
                "Stay in the opponents' half when you do not have the ball."
            ),
            "defender": (
                "Your role: DEFENDER. Stay in your own half, between the ball and your goal "
                f"at {facts.own_goal}. Steal the ball from attackers who come close, then "
                "pass it to the forward rather than running up the field yourself."
            ),
        }[role]
    else:
        third = facts.width / 3
        bounds = {"west": (0, third), "centre": (third, 2 * third), "east": (2 * third,
                                                                             facts.width)}
        low, high = bounds[role]
        rules = (
            f"Your zone: the {role.upper()} third of the field (x from {int(low)} to "
            f"{int(high) - 1}). Collect the balls in your zone first and leave the other "
            "zones to the other players; go elsewhere only when your zone is empty."
        )
    return rules + (f"\nThe others' roles: {mates}." if mates else "")


def system_prompt(facts: GameFacts, level: int, role: str | None = None,
                  teammate_roles: dict[str, str] | None = None) -> str:
    """The instructions of one agent at coordination ``level`` (1, 2 or 3)."""
    if level not in COORDINATION_LEVELS:
        raise ValueError(f"coordination level must be 1, 2 or 3, not {level!r}")
    parts = [_rules(facts)]
    if level == 2:
        parts.append(_hints(facts))
    if level == 3:
        if role is None:
            raise ValueError("coordination level 3 needs a role for every agent")
        parts.append(_role_rules(facts, role, teammate_roles or {}))
    parts.append(ACTIONS_TEXT[facts.game])
    return "\n\n".join(parts)
