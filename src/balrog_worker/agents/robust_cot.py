"""BALROG's robust chain-of-thought agent: reasoning, then the action between tags.

Strict reading (BALROG's): the text between the first <|ACTION|> and the next <|END|>,
stripped; without tags, no action (BALROG's placeholder sentence, always invalid). The
whole answer is logged as reasoning but, as in BALROG, not replayed in the history."""

from balrog_worker.agents.base import Agent
from balrog_worker.agents.parsing import first_tagged, match_action, tagged

NO_ACTION = "Failed to obtain a valid action from the reasoning."


class RobustCoTAgent(Agent):
    def answer_format(self) -> str:
        return ("First think about the best thing to do. Then choose exactly one of the "
                "actions above and write it in exactly this format:\n\n"
                "<|ACTION|>YOUR_CHOSEN_ACTION<|END|>\n\nwith your action in place of "
                "YOUR_CHOSEN_ACTION.")

    def extract(self, text: str) -> tuple[str, str | None]:
        inside = first_tagged(text)
        return (inside.strip() if inside is not None else NO_ACTION), text

    def lenient(self, text, valid_actions):
        inside, start = tagged(text)
        if inside is None:
            return match_action(text, valid_actions), text.strip() or None
        return match_action(inside, valid_actions), text[:start].strip() or None
