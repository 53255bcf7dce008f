"""BALROG's chain-of-thought agent: reasoning first, then a final 'ACTION: x'.

Strict reading (BALROG's): the naive filter (letters, whitespace, ':'), then the text
after the last "ACTION:", stripped. The whole answer is the reasoning; the newest
``max_cot_history`` of them come back in the history as "Previous plan:"."""

from balrog_worker.agents.base import Agent, Decision, letters_only
from balrog_worker.agents.parsing import labelled, match_action


class CoTAgent(Agent):
    def answer_format(self) -> str:
        return ("First think step by step about the best thing to do. Then end your answer "
                "with one action in the form: ACTION: <action>")

    def extract(self, text: str) -> tuple[str, str | None]:
        return letters_only(text).split("ACTION:")[-1].strip(), text

    def remembered_reasoning(self, decision: Decision) -> str | None:
        return decision.completion.text.strip()

    def lenient(self, text, valid_actions):
        action, start = labelled(text, "ACTION")
        if action is None:  # no final line: the whole answer is the (likely invalid) action
            return match_action(text, valid_actions), text.strip() or None
        return match_action(action, valid_actions), text[:start].strip() or None
