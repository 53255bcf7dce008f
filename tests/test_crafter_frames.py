"""Crafter without pixels: a text episode makes exactly the generator draws of BALROG's two
renders a step (so the world evolves as BALROG's), and a frame drawn on demand is the
frame BALROG rendered at that step, pixel for pixel, night included."""

import random

import crafter
import numpy as np

from balrog_worker.envs.crafter import (
    ACTION_INDEX,
    AREA,
    FRAME_SIZE,
    VIEW,
    CrafterGame,
    _ordered_chunks,
    describe_frame,
)


class EagerCrafter:
    """The same game rendering both frames every step, as BALROG does."""

    def __init__(self, seed: int):
        self.env = crafter.Env(area=AREA, view=VIEW, size=FRAME_SIZE, reward=True, seed=seed)
        _ordered_chunks(self.env._world)
        self.env.reset()
        self.env.step(ACTION_INDEX["Noop"])
        self.frame = self.env.render()

    def step(self, action: str):
        _, reward, done, _ = self.env.step(ACTION_INDEX[action])
        self.frame = self.env.render()
        return reward, done


def test_a_text_episode_is_balrogs_and_its_frames_are_balrogs_at_night_too():
    rng = random.Random(3)
    eager, lazy = EagerCrafter(seed=11), CrafterGame("default")
    lazy.reset(11)
    actions = list(ACTION_INDEX)
    nights = 0
    for step in range(700):
        action = rng.choice(actions)
        reward, done = eager.step(action)
        outcome = lazy.step(action)
        assert (outcome.reward, outcome.terminated) == (reward, done), step
        shown = (outcome.observation.text, outcome.observation.context)
        assert shown == describe_frame(eager.env), step
        night = eager.env._world.daylight < 0.5
        nights += night
        if night or step % 50 == 0:  # frames drawn on demand, some by day, all by night
            assert np.array_equal(lazy.frame(), eager.frame), step
        if done:
            break
    assert nights >= 10, "the episode never reached the night: nothing was tested there"
    state, other = eager.env._world.random.get_state(), lazy.env._world.random.get_state()
    assert np.array_equal(state[1], other[1]) and state[2] == other[2]
