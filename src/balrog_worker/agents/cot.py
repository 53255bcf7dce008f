"""BALROG's chain-of-thought agent: reasoning first, then a final 'ACTION: x' line. The
reasoning is logged, and the last ``max_cot_history`` answers are replayed whole."""

from balrog_worker.agents.base import Agent, Decision
from balrog_worker.agents.parsing import labelled, match_action


class CoTAgent(Agent):
    def answer_rules(self) -> str:
        return ("Each turn, first think step by step about the situation and what to do, "
                "then end your answer with one line of the form\nACTION: <one action from "
                "the list above, written as it is written there>")

    def answer_reminder(self) -> str:
        return "Think it through, then end with the line ACTION: <action>."

    def parse(self, completion, valid_actions) -> Decision:
        action, start = labelled(completion.text, "ACTION")
        if action is None:  # no final line: the whole answer is the (likely invalid) action
            return Decision(completion, match_action(completion.text, valid_actions),
                            reasoning=completion.text.strip() or None)
        return Decision(completion, match_action(action, valid_actions),
                        reasoning=completion.text[:start].strip() or None)
