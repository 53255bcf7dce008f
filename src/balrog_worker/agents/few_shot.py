"""BALROG's few-shot agent: whole demonstration episodes first, then the naive agent.

The layout is BALROG's (``balrog/agents/few_shot.py``): the instructions, with a line
asking to learn from the demonstrations; each episode between START and END markers, its
observations as user messages and its actions as assistant messages; at most
``max_icl_history`` events in all (a longer episode is cut, keeping its END marker); a
line saying it is now the model's turn; then the history, without the instructions. The
answer is read as the naive agent reads it. Demonstrations come from
``agents.demonstrations``: never from a seed the cell plays.
"""

from __future__ import annotations

from balrog_worker.agents.demonstrations import Demonstration
from balrog_worker.agents.naive import NaiveAgent
from balrog_worker.clients.base import Message

LEARN = "First, observe the demonstrations provided and learn from them!"


class FewShotAgent(NaiveAgent):
    def __init__(self, *args, demonstrations: tuple[Demonstration, ...] = (), **kwargs):
        super().__init__(*args, **kwargs)
        if not demonstrations:
            raise ValueError("few_shot: no demonstrations to show")
        self.demonstrations = demonstrations

    def opening(self) -> list[Message]:
        # BALROG swaps its prompts' closing "PLAY" for the line asking to learn.
        instructions = (self.instructions.replace("PLAY", LEARN) if "PLAY" in self.instructions
                        else f"{self.instructions}\n\n{LEARN}")
        out = [Message("user", instructions)]
        budget = self.spec.max_icl_history
        for number, demo in enumerate(self.demonstrations, start=1):
            # "Obesrvation" is BALROG's spelling: the models it scored saw it.
            events = [Message("user", f"Obesrvation:\n{demo.observations[0]}")]
            for action, text in zip(demo.actions, demo.observations[1:], strict=True):
                events += [Message("assistant", action), Message("user", f"Obesrvation:\n{text}")]
            cut = len(events) > budget
            out.append(Message("user", f"****** START OF DEMONSTRATION EPISODE {number} ******"))
            out += events[:budget]
            out.append(Message("user", f"****** END OF DEMONSTRATION EPISODE {number} ******"))
            budget -= min(len(events), budget)
            if cut:
                break
        out.append(Message("user", "****** Now it's your turn to play the game! ******"))
        return out
