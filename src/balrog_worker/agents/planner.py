"""The planning agent (BALROG's ``custom`` agent): it keeps a plan, shown with each
observation, and answers 'PLAN: ...' then 'ACTION: ...'.

Strict reading (BALROG's): the plan is the text after "PLAN:" up to a line starting
"ACTION:" (any case); the action is everything after the first "ACTION:", stripped. A
plan of "No changes to the plan." (or none) keeps the current one."""

import re

from balrog_worker.agents.base import Agent
from balrog_worker.agents.parsing import labelled, match_action

NO_CHANGE = "No changes to the plan."
_PLAN = re.compile(r"PLAN:", re.IGNORECASE)
_ACTION = re.compile(r"ACTION:", re.IGNORECASE)
_ACTION_LINE = re.compile(r"\nACTION:", re.IGNORECASE)
_SPACE = re.compile(r"\s*")


def read_plan_and_action(text: str) -> tuple[str, str]:
    """(plan, action) as BALROG's custom agent reads them ("" where missing)."""
    plan = NO_CHANGE
    if (start := _PLAN.search(text)) is not None:
        # The plan starts after the spaces that follow the label, so a label followed
        # directly by an ACTION line gives that line as the plan, as BALROG's regex does.
        begin = _SPACE.match(text, start.end()).end()
        end = _ACTION_LINE.search(text, begin)
        plan = text[begin:end.start() if end else len(text)].strip()
    action = ""
    if (label := _ACTION.search(text)) is not None:
        action = text[label.end():].strip()
    return plan, action


class PlannerAgent(Agent):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = ""

    def answer_format(self) -> str:
        plan = f"Current Plan:\n{self.plan}\n" if self.plan else "You have no plan yet.\n"
        return (f"{plan}\nReview the current plan, if there is one, and decide whether to "
                "keep it or change it; if you change it, give the new plan. Then give the "
                "next action. You must give an action every step. Answer in this form:\n"
                f'PLAN: <your updated plan, or "{NO_CHANGE}" if the plan is still good>\n'
                "ACTION: <your next action>")

    def extract(self, text: str) -> tuple[str, str | None]:
        plan, action = read_plan_and_action(text)
        if plan != NO_CHANGE:
            self.plan = plan
        return action, plan

    def lenient(self, text, valid_actions):
        plan, _ = labelled(text, "PLAN")
        action, _ = labelled(text, "ACTION")
        if plan and plan.strip() != NO_CHANGE:
            self.plan = plan.strip()
        candidate = match_action(action if action is not None else text, valid_actions)
        return candidate, plan.strip() if plan else None
