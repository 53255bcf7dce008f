"""BALROG's few-shot agent: the naive agent, with demonstrations of good play first.

Demonstrations come from this project's own recorded episodes of the same env/task
(``AgentSpec.demonstrations``: a results directory, e.g. the scripted baseline's cells):
successful episodes first, their steps in order, at most ``max_icl_history`` of them.
They sit right after the system prompt, so every step's prompt shares them as prefix.
"""

from __future__ import annotations

import functools
from pathlib import Path

from balrog_worker.agents.naive import NaiveAgent
from balrog_worker.clients.base import Message
from balrog_worker.config import ConfigError
from balrog_worker.store import EPISODES, STEPS, read_jsonl


@functools.cache
def demonstrations(root: str, env: str, task: str, limit: int) -> tuple[tuple[str, str], ...]:
    """(observation, action) pairs from recorded episodes of ``env/task`` under ``root``."""
    cells = []
    for episodes_file in sorted(Path(root).glob(f"*/{EPISODES}")):
        episodes, _ = read_jsonl(episodes_file)
        good = [e for e in episodes if e.get("env") == env and e.get("task") == task
                and not e.get("failed")]
        if good:
            cells.append((episodes_file.parent, good))
    steps_out: list[tuple[str, str]] = []
    # Successful episodes first (best progression), then the others.
    ranked = sorted(((-(e.get("progression") or 0.0), str(d), e["episode_index"], d)
                     for d, episodes in cells for e in episodes))
    for _, _, index, directory in ranked:
        steps, _ = read_jsonl(directory / STEPS)
        for step in sorted((s for s in steps if s["episode_index"] == index),
                           key=lambda s: s["step"]):
            if len(steps_out) == limit:
                return tuple(steps_out)
            if step.get("valid"):
                steps_out.append((step["observation"], step["action"]))
    return tuple(steps_out)


class FewShotAgent(NaiveAgent):
    def preamble(self) -> tuple[Message, ...]:
        env, task = self.env_task or ("", "")
        shots = demonstrations(self.spec.demonstrations, env, task, self.spec.max_icl_history)
        if not shots:
            raise ConfigError(
                f"few_shot: no recorded episodes of {env}/{task} under "
                f"{self.spec.demonstrations}; run the scripted baseline first (or set the "
                "agent's demonstrations: to a results directory that has some)")
        examples = "\n\n".join(f"Observation:\n{obs}\nAction: {action}"
                               for obs, action in shots)
        return (Message("user", "Examples of good play in this game, each an observation "
                                f"and the action taken:\n\n{examples}"),
                Message("assistant", "Understood. I will answer with one action each turn."))
