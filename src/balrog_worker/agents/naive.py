"""BALROG's naive agent: the answer is the action, nothing else."""

from balrog_worker.agents.base import Agent


class NaiveAgent(Agent):
    def answer_rules(self) -> str:
        return (
            "Each turn, answer with exactly one action from the list above, written as "
            "it is written there, and nothing else."
        )

    def answer_reminder(self) -> str:
        return "Your action:"
