"""The planning agent (MOSAIC's custom agent): it keeps a plan, revises it each step, and
answers with 'PLAN: ...' then 'ACTION: ...'. The plan is logged as the reasoning and is
shown back with the next observation, so the model can follow or revise it."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.parsing import labelled, match_action


class PlannerAgent(Agent):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.plan = ""

    def answer_rules(self) -> str:
        return ("Keep a short plan of the next few steps towards your goal. Each turn, "
                "answer with exactly two lines:\nPLAN: <your plan, revised if the situation "
                "changed>\nACTION: <the next action of the plan, from the list above, "
                "written as it is written there>")

    def answer_reminder(self) -> str:
        return "Answer with the two lines PLAN: ... and ACTION: ..."

    def carry(self) -> str:
        return f"Your plan so far: {self.plan}" if self.plan else ""

    def parse(self, completion, valid_actions) -> Decision:
        plan, _ = labelled(completion.text, "PLAN")
        action, _ = labelled(completion.text, "ACTION")
        if plan:
            self.plan = plan.strip()
        candidate = match_action(action if action is not None else completion.text,
                                 valid_actions)
        return Decision(completion, candidate, reasoning=plan.strip() if plan else None)
