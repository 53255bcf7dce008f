"""MiniGrid-family games (MiniGrid ids, and BabyAI's levels built on them) as text.

Both share the grid, the agent's partial view (described by ``grid_text``), the six
actions BALROG offers (minigrid's "done" is left out) and their score: progression 1
once the level pays a positive reward.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from balrog_worker.envs.base import Game, Observation, StepOutcome
from balrog_worker.envs.grid_text import describe_view

# Text action -> (minigrid action index, description).
ACTIONS = {
    "turn left": (0, "turn 90 degrees to your left, staying in the same cell"),
    "turn right": (1, "turn 90 degrees to your right, staying in the same cell"),
    "go forward": (2, "move one cell in the direction you face"),
    "pick up": (3, "pick up the object directly in front of you (1 step forward)"),
    "drop": (4, "put the object you carry in the empty cell in front of you"),
    "toggle": (5, "open or close the door in front of you (a locked door needs its key)"),
}
_NAMES = {index: name for name, (index, _) in ACTIONS.items()}

MINIGRID_TASKS = {
    "empty": "MiniGrid-Empty-8x8-v0",
    "doorkey": "MiniGrid-DoorKey-6x6-v0",
    "lavagap": "MiniGrid-LavaGapS7-v0",
    "multiroom": "MiniGrid-MultiRoom-N2-S4-v0",
    "keycorridor": "MiniGrid-KeyCorridorS3R1-v0",
    "fourrooms": "MiniGrid-FourRooms-v0",
}


class GridWorldGame(Game):
    default_action = "go forward"
    world = "a grid world of rooms"

    def __init__(self, task: str, env: gym.Env):
        self.task = task
        self.env = env.unwrapped
        self._wrapped = env
        self._success = False
        self._bot = None
        self._last_action: int | None = None
        self._seen: np.ndarray | None = None  # the encoded view the last step returned

    @property
    def actions(self) -> dict[str, str]:
        return {name: description for name, (_, description) in ACTIONS.items()}

    def instructions(self) -> str:
        actions = "\n".join(f"- {name}: {text}" for name, text in self.actions.items())
        return (
            f"You are an agent in {self.world}, seen from above. Each turn you are told "
            "what you can see from where you stand: the cells ahead of you and to your "
            "sides, described by how many steps to your left or right and how many steps "
            "forward they are. You cannot see behind you or through walls and closed "
            "doors. You can carry one object at a time.\n\n"
            f"The actions you can take:\n{actions}\n\n"
            "To go to an object, stand in the cell next to it, facing it. To pick it up, "
            "face it from the next cell (1 step forward) and pick up.\n\n"
            f"Your mission: {self.env.mission}."
        )

    def reset(self, seed: int) -> Observation:
        self._seen = self._view_of(self._wrapped.reset(seed=seed)[0])
        self._success = False
        self._bot = None
        self._last_action = None
        return self._observe()

    def step(self, action: str) -> StepOutcome:
        index = ACTIONS[action][0]
        obs, reward, terminated, truncated, _ = self._wrapped.step(index)
        self._seen = self._view_of(obs)
        self._last_action = index
        self._success = self._success or reward > 0
        return StepOutcome(self._observe(), float(reward), bool(terminated), bool(truncated))

    def progression(self) -> float:
        return 1.0 if self._success else 0.0

    def frame(self) -> np.ndarray:
        return self.env.get_frame(highlight=True, tile_size=16)

    def display(self) -> np.ndarray:
        return self.env.get_frame(highlight=True, tile_size=32)

    def episode_info(self) -> dict:
        return {"mission": self.env.mission}

    def oracle_action(self) -> str:
        """The BabyAI bot's next action (it plans from the true state)."""
        from minigrid.utils.baby_ai_bot import BabyAIBot

        if self._bot is None:
            self._bot = BabyAIBot(self.env)
            return _NAMES[int(self._bot.replan())]
        return _NAMES.get(int(self._bot.replan(self._last_action)), self.default_action)

    def _view_of(self, obs) -> np.ndarray | None:
        """The encoded view (``grid.encode`` of what the agent sees) in ``obs``, which the
        text would otherwise compute again; None where the env returns no such view."""
        image = obs.get("image") if isinstance(obs, dict) else None
        size = getattr(self.env, "agent_view_size", None)
        if isinstance(image, np.ndarray) and image.shape == (size, size, 3):
            return image
        return None

    def _observe(self) -> Observation:
        return Observation(f"Mission: {self.env.mission}\n{describe_view(self.env)}")

    def close(self) -> None:
        self._wrapped.close()


class MiniGridGame(GridWorldGame):
    family = "minigrid"
    world = "MiniGrid, a grid world"

    def __init__(self, task: str):
        # A short name of ours, or any registered MiniGrid or BabyAI id.
        super().__init__(task, gym.make(MINIGRID_TASKS.get(task, task), render_mode="rgb_array"))

    def oracle_action(self) -> str:
        raise NotImplementedError("minigrid levels have no scripted oracle")
