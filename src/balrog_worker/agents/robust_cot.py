"""BALROG's robust chain-of-thought agent: reasoning, then the action between tags."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.parsing import match_action, tagged


class RobustCoTAgent(Agent):
    def answer_rules(self) -> str:
        return ("Each turn, first think step by step about the situation and what to do, "
                "then end your answer with the action you choose, written as it is written "
                "in the list above, between the tags <|ACTION|> and <|END|>, for example: "
                "<|ACTION|>go forward<|END|>")

    def answer_reminder(self) -> str:
        return "Think it through, then end with <|ACTION|>your action<|END|>."

    def parse(self, completion, valid_actions) -> Decision:
        text = completion.text
        inside, start = tagged(text)
        if inside is None:
            return Decision(completion, match_action(text, valid_actions),
                            reasoning=text.strip() or None)
        reasoning = text[:start].strip() or None
        return Decision(completion, match_action(inside, valid_actions), reasoning=reasoning)
