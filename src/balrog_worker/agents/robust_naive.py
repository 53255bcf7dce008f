"""BALROG's robust naive agent: the action between explicit tags, so stray words around
it do no harm.

Strict reading (BALROG's): the text between the first <|ACTION|> and the next <|END|>,
stripped; without tags, the whole answer."""

from balrog_worker.agents.base import Agent
from balrog_worker.agents.parsing import first_tagged, match_action, tagged_action


class RobustNaiveAgent(Agent):
    def answer_format(self) -> str:
        return ("Choose exactly one of the actions above and write it in exactly this "
                "format:\n\n<|ACTION|>YOUR_CHOSEN_ACTION<|END|>\n\nwith your action in "
                "place of YOUR_CHOSEN_ACTION. Write nothing else: no explanation, no "
                "reasoning.")

    def extract(self, text: str) -> tuple[str, str | None]:
        inside = first_tagged(text)
        return (inside.strip() if inside is not None else text), None

    def lenient(self, text, valid_actions):
        inside = tagged_action(text)
        return match_action(inside if inside is not None else text, valid_actions), None
