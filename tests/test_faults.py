"""A whole small grid against a server that fails 30% of its answers.

The server (``tests.stubs.FaultSchedule``) mixes 429s carrying Retry-After, 500s, hangs
past the client's timeout, dropped connections, malformed JSON and empty completions,
drawn from a seed per (request, attempt), and logs every attempt with the fault it got.
Four cells run at once through ``balrog-worker run``, as Snakemake's jobs would. Every
model call of every episode is matched to the server's log by its request seed (derived
from the episode seed and the step), so the retries in the records are checked exactly:

- a step's ``retries`` is the number of faults its call met before the server answered;
- an episode fails exactly when one of its calls used up its retries, and its record
  names the fault the last attempt met;
- the rerun (the outage is over) plays only the failed episodes and leaves every
  completed record as it was.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from pathlib import Path

import pytest
import yaml

from balrog_worker.cells import Cell
from balrog_worker.envs.base import SoloGame
from balrog_worker.seeding import derive_seed, episode_seed
from tests.stubs import TRANSIENT_FAULTS, FaultSchedule, openai_server

from .conftest import run_cli

KEY = "sk-faults-5f0c2b9e41d7"
SEED = 11  # params.yaml's base seed
FAULT_SEED = 22  # the server's; with it, every kind of fault is met and some calls give up
RATE = 0.3
TIMEOUT_S = 2.0  # the client's; a hang lasts four times as long
HANG_S = 4 * TIMEOUT_S
RETRY_AFTER_S = 1
MAX_RETRIES = 2
EPISODES, STEPS = 3, 5
TASKS = {"babyai": ["goto", "pickup"], "minigrid": ["empty", "doorkey"]}
# What a failed episode's error says for the fault its last attempt met.
NAMED = {"429": "HTTP 429", "500": "HTTP 500", "hang": f"no answer within {TIMEOUT_S:g} s",
         "drop": "connection failed", "malformed": "malformed response",
         "empty": "empty response"}


def params(url: str) -> dict:
    return {
        "seed": SEED,
        "evaluation": {"parallel_episodes": EPISODES},
        "models": {"gpt": {"backend": "openai", "model": "gpt-test", "base_url": f"{url}/v1",
                           "timeout_s": TIMEOUT_S, "max_retries": MAX_RETRIES,
                           "generation": {"temperature": 0.0, "max_tokens": 8}}},
        "agents": {"naive": {}},
        "envs": {env: {"tasks": tasks, "episodes": EPISODES, "max_steps": STEPS}
                 for env, tasks in TASKS.items()},
        "grid": {"models": ["gpt"], "agents": ["naive"], "envs": list(TASKS)},
    }


CELLS = [Cell("gpt", "naive", env, task) for env, tasks in TASKS.items() for task in tasks]


def run_grid(root: Path) -> dict:
    """Every cell at once, each as its own `balrog-worker run`; their results by slug."""
    env = {"OPENAI_API_KEY": KEY, "BALROG_WORKER_CACHE": str(root / "cache")}

    def run(cell: Cell):
        return run_cli("run", "--params", str(root / "params.yaml"), "--env",
                       f"{cell.env}/{cell.task}", "--model", "gpt", "--out",
                       str(root / "results" / cell.slug), cwd=root, env=env, check=False)

    with ThreadPoolExecutor(len(CELLS)) as pool:
        return dict(zip([c.slug for c in CELLS], pool.map(run, CELLS), strict=True))


def read(path: Path) -> list[dict]:
    """Every line of a JSONL file, strictly: one unparseable line fails the test."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def records(out: Path) -> tuple[list[dict], list[dict], dict]:
    """A cell's episode and step records and its summary."""
    return (read(out / "episodes.jsonl"), read(out / "steps.jsonl"),
            json.loads((out / "summary.json").read_text()))


def call_seeds() -> dict[int, tuple[str, int, int]]:
    """The request seed of every call the grid can make -> (cell slug, episode, step)."""
    seeds = {}
    for cell in CELLS:
        for index in range(EPISODES):
            episode = episode_seed(SEED, cell.env, cell.task, index)
            for step in range(STEPS):
                seeds[derive_seed(episode, step, SoloGame.PLAYER)] = (cell.slug, index, step)
    assert len(seeds) == len(CELLS) * EPISODES * STEPS  # one call, one seed
    return seeds


def attempts_by_call(requests: list[dict]) -> dict[tuple[str, int, int], list[dict]]:
    """The server's log, grouped by call, attempts in arrival order."""
    seeds = call_seeds()
    calls = defaultdict(list)
    for request in requests:
        calls[seeds[request["body"]["seed"]]].append(request)  # KeyError: a stray request
    return calls


def faults(attempts: list[dict]) -> int:
    return sum(a["behaviour"] != "ok" for a in attempts)


@pytest.mark.slow
def test_a_grid_survives_a_faulty_server_and_a_rerun_finishes_it(tmp_path, capsys):
    schedule = FaultSchedule(RATE, FAULT_SEED)
    server = openai_server.openai_stub(answer="turn left", faults=schedule,
                                       hang_s=HANG_S, retry_after=str(RETRY_AFTER_S))
    with server as stub:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(stub.url)))
        first = run_grid(tmp_path)
        first_log = list(stub.requests)
        recorded = {cell.slug: records(tmp_path / "results" / cell.slug) for cell in CELLS}
        stub.faults = None  # the outage is over
        second = run_grid(tmp_path)
        second_log = stub.requests[len(first_log):]

    calls = attempts_by_call(first_log)
    given_up = {call for call, attempts in calls.items() if attempts[-1]["behaviour"] != "ok"}
    kinds = Counter(a["behaviour"] for a in first_log)
    # The schedule is what the test is about: faults at about the rate, every kind met,
    # some calls survived and some gave up.
    assert 0.2 < 1 - kinds["ok"] / len(first_log) < 0.45, kinds
    assert set(kinds) == {"ok", *TRANSIENT_FAULTS}, kinds
    assert given_up and len(given_up) < len(CELLS) * EPISODES

    # --- the first run, under faults ---
    failed_total = 0
    for cell in CELLS:
        episodes, steps, summary = recorded[cell.slug]
        assert sorted(e["episode_index"] for e in episodes) == list(range(EPISODES))
        failed = [e for e in episodes if e["failed"]]
        failed_total += len(failed)
        gave_up_in = {index for slug, index, _ in given_up if slug == cell.slug}
        # an episode fails exactly when one of its calls gave up, and says why
        assert {e["episode_index"] for e in failed} == gave_up_in
        for episode in failed:
            step = episode["num_steps"]  # the steps played before the call that gave up
            attempts = calls[(cell.slug, episode["episode_index"], step)]
            assert [a["behaviour"] != "ok" for a in attempts] == [True] * (MAX_RETRIES + 1)
            assert episode["end_reason"] == "error"
            assert f"gave up after {MAX_RETRIES + 1} attempts" in episode["error"]
            assert NAMED[attempts[-1]["behaviour"]] in episode["error"], episode["error"]
            assert not any(s["episode_index"] == episode["episode_index"] for s in steps)
        for episode in (e for e in episodes if not e["failed"]):
            index = episode["episode_index"]
            own = [s for s in steps if s["episode_index"] == index]
            assert [s["step"] for s in own] == list(range(episode["num_steps"]))
            assert episode["num_steps"] == STEPS or episode["terminated"]
            for record in own:
                attempts = calls[(cell.slug, index, record["step"])]
                assert attempts[-1]["behaviour"] == "ok"
                assert record["retries"] == faults(attempts) == len(attempts) - 1
                assert record["valid"] and record["action"] == "turn left"
            assert episode["retries"] == sum(s["retries"] for s in own)
            assert episode["llm_calls"] == len(own) and episode["invalid_actions"] == 0
        assert summary["aggregate"]["failed_episodes"] == len(failed)
        result = first[cell.slug]
        if failed:  # failed episodes end the run with exit 3, never a crash
            assert result.returncode == 3, result.stderr
            assert f"{len(failed)} of {EPISODES} episodes failed" in result.stderr
        else:
            assert result.returncode == 0, result.stderr

    # A 429 is retried after the Retry-After it carries, a hang after the client's
    # timeout (the hung answer would come four timeouts later).
    for attempts in calls.values():
        for attempt, following in pairwise(attempts):
            gap = following["time"] - attempt["time"]
            if attempt["behaviour"] == "429":
                assert gap >= RETRY_AFTER_S, gap
            if attempt["behaviour"] == "hang":
                assert TIMEOUT_S <= gap < HANG_S, gap

    injected = len(first_log) - kinds["ok"]
    survived = sum(faults(a) for call, a in calls.items() if call not in given_up)
    assert injected == survived + (MAX_RETRIES + 1) * len(given_up)
    assert failed_total == len(given_up)

    # --- the rerun, faults over: only the failed episodes are played again ---
    for result in second.values():
        assert result.returncode == 0, result.stderr
    asked = attempts_by_call(second_log)
    assert {(slug, index) for slug, index, _ in asked} == {
        (slug, index) for slug, index, _ in given_up}
    assert all(a["behaviour"] == "ok" for a in second_log)
    retries, played = 0, {}
    for cell in CELLS:
        episodes, steps, summary = records(tmp_path / "results" / cell.slug)
        indices = [e["episode_index"] for e in episodes]
        assert sorted(indices) == list(range(EPISODES))  # each once: none duplicated
        assert not any(e["failed"] for e in episodes)
        kept = [e for e in recorded[cell.slug][0] if not e["failed"]]
        assert episodes[:len(kept)] == kept  # completed records untouched, still first
        assert steps[:len(recorded[cell.slug][1])] == recorded[cell.slug][1]
        assert Counter(s["episode_index"] for s in steps) == {
            e["episode_index"]: e["num_steps"] for e in episodes}
        played.update({(cell.slug, e["episode_index"]): e["num_steps"] for e in episodes})
        retries += sum(e["retries"] for e in episodes)
        assert sum(s["retries"] for s in steps) == sum(e["retries"] for e in episodes)
        assert summary["aggregate"]["failed_episodes"] == 0
    # the response cache serves the steps the failed episodes had played: only the call
    # that gave up, and those after it, reach the server again
    assert set(asked) == {(slug, index, step) for slug, index, gave_up_at in given_up
                          for step in range(gave_up_at, played[(slug, index)])}
    # Every fault met by a call that got its answer in the end is one recorded retry
    # (a call replayed from the cache brings the retries it took).
    assert retries == survived

    with capsys.disabled():
        print(f"\nfaults: {injected} injected over {len(first_log)} requests "
              f"({dict(sorted(kinds.items()))}); {survived} survived by retrying "
              f"(= {retries} retries recorded); {len(given_up)} calls gave up after "
              f"{MAX_RETRIES + 1} faults = {failed_total} failed episodes, all completed by "
              f"the rerun ({len(second_log)} requests)")
