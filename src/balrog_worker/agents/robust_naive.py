"""BALROG's robust naive agent: the action inside explicit tags, so stray words around
it do no harm; without tags the whole answer is read as the naive agent would."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.parsing import match_action, tagged_action


class RobustNaiveAgent(Agent):
    def answer_rules(self) -> str:
        return ("Each turn, answer with exactly one action from the list above, written as "
                "it is written there, between the tags <|ACTION|> and <|END|>, for example: "
                "<|ACTION|>go forward<|END|>")

    def answer_reminder(self) -> str:
        return "Your action, between <|ACTION|> and <|END|>:"

    def parse(self, completion, valid_actions) -> Decision:
        inside = tagged_action(completion.text)
        return Decision(completion, match_action(inside if inside is not None
                                                 else completion.text, valid_actions))
