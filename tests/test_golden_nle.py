"""NetHack and MiniHack against BALROG's own output: every golden episode (NetHack
10 seeds, MiniHack's eight BALROG tasks x 10 seeds, Boxoban included, 30 random language
actions each) replayed through this project's env API must give the same game (NetHack's
seeds, the bottom-line statistics and the screen after every step) and the same text,
reward and end at every step."""

import gzip
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from balrog_worker import envs


def load(name: str) -> list[dict]:
    with gzip.open(Path(__file__).parent / "golden" / name, "rt") as golden:
        return [json.loads(line) for line in golden]


RECORDS = load("nle.jsonl.gz") + load("minihack.jsonl.gz")
TASKS = list(dict.fromkeys((r["env"], r["task"]) for r in RECORDS))


def replay(record: dict) -> None:
    game = envs.make(record["env"], record["task"])  # BALROG's names: "nle", gym ids
    where = f"{record['task']} seed {record['seed']}"
    try:
        assert list(game.nle_seeds(record["seed"])) == record["nle_seeds"], where
        observation = game.reset(record["seed"])
        check(game, observation, record, 0, where)
        for i, action in enumerate(record["actions"]):
            assert game.is_valid(action), f"{where}: {action!r} is BALROG's, not valid here"
            outcome = game.step(action)
            check(game, outcome.observation, record, i + 1, where)
            assert (outcome.reward, outcome.terminated, outcome.truncated) == pytest.approx(
                (record["rewards"][i], record["terminated"][i], record["truncated"][i]),
                abs=1e-12), f"{where} step {i + 1}"
        assert game.progression() == record["progression"], where
    finally:
        game.close()


def check(game, observation, record: dict, i: int, where: str) -> None:
    state = record["states"][i]
    obs = game._obs
    # The game first: the same statistics and the same screen.
    assert np.asarray(obs["blstats"]).tolist() == state["blstats"], f"{where} step {i}"
    for key in ("glyphs", "tty_chars"):
        digest = hashlib.sha1(np.ascontiguousarray(obs[key]).tobytes()).hexdigest()
        assert digest == state[f"{key.split('_')[0]}_sha1"], f"{where} step {i}: other {key}"
    # Then the text, exactly.
    shown = record["observations"][i]
    assert observation.text == shown["long_term_context"], f"{where} step {i}"
    assert observation.context == shown["short_term_context"], f"{where} step {i}"


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t[1])
def test_nle_and_minihack_replay_balrog_exactly(task):
    for record in RECORDS:
        if (record["env"], record["task"]) == task:
            replay(record)


def test_balrogs_task_list_is_played():
    """Every MiniHack task of BALROG's config is in the golden files and listed here."""
    minihack_ids = [task for env, task in TASKS if env == "minihack"]
    assert len(minihack_ids) == 8
    listed = set(envs.FAMILIES["minihack"].task_ids())
    assert {envs.canonical("minihack", task)[1] for task in minihack_ids} <= listed
