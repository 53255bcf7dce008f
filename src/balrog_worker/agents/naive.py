"""BALROG's naive agent: the answer is the action, nothing else.

Strict reading (BALROG's): everything but letters, whitespace and ':' is removed, and
what is left must be an action name exactly."""

from balrog_worker.agents.base import Agent, letters_only


class NaiveAgent(Agent):
    def answer_format(self) -> str:
        return ("Answer with exactly one of the actions above and no other text. Keep "
                "answering with one action each turn until the episode ends.")

    def extract(self, text: str) -> tuple[str, str | None]:
        return letters_only(text), None
