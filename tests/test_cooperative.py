"""Episodes as greenlets of the event loop (``cooperative``): the executor's contract, the
model client awaiting on the loop, and a cell played that way recording exactly what a
cell played on threads records."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import subprocess
import threading
import time
from dataclasses import replace

import pytest

from balrog_worker.cells import Cell
from balrog_worker.clients import make_client
from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.clients.http import CallLoop
from balrog_worker.collector import YOUNGEST_THRESHOLD, fewer_collections
from balrog_worker.config import AgentSpec, CellConfig, Generation, ModelSpec
from balrog_worker.cooperative import GreenletExecutor, all_at_once, cooperative, wait
from balrog_worker.evaluator import run_cell
from tests.conftest import BIN, run_cli
from tests.stubs.openai_server import openai_stub
from tests.test_episode_processes import (
    _indices,
    _params,
    _wait_for_episodes,
    records,
    slow_answer,
)


@pytest.fixture
def loop():
    calls = CallLoop.hold()
    yield calls.loop
    calls.release()


class InFlight:
    """Counts the calls between ``enter`` and ``leave``, and the most at once."""

    def __init__(self):
        self.now = self.most = 0
        self.lock = threading.Lock()

    def enter(self):
        with self.lock:
            self.now += 1
            self.most = max(self.most, self.now)

    def leave(self):
        with self.lock:
            self.now -= 1


def test_calls_run_on_the_loop_at_most_max_workers_at_once(loop):
    flight = InFlight()

    def call(index: int) -> tuple[int, bool, str]:
        flight.enter()
        wait(asyncio.sleep(0.05))  # the loop runs the others meanwhile
        flight.leave()
        return index, cooperative(), threading.current_thread().name

    with GreenletExecutor(loop, max_workers=8) as pool:
        futures = [pool.submit(call, i) for i in range(40)]
    results = [future.result() for future in futures]
    assert [index for index, _, _ in results] == list(range(40))
    assert all(on_greenlet for _, on_greenlet, _ in results)
    assert {thread for _, _, thread in results} == {"model-calls"}  # the loop's thread
    assert flight.most == 8
    assert not cooperative()  # here, on a plain thread
    with pytest.raises(RuntimeError, match="outside run_cooperatively"):
        wait(asyncio.sleep(0))


def test_errors_reach_the_future_and_a_waited_error_reaches_the_caller(loop):
    async def fails():
        raise KeyError("from the loop")

    def catches() -> str:
        try:
            wait(fails())
        except KeyError as error:
            return f"caught {error}"
        return "not raised"

    def raises():
        raise ValueError("from the call")

    with GreenletExecutor(loop, max_workers=2) as pool:
        caught, raised = pool.submit(catches), pool.submit(raises)
    assert caught.result() == "caught 'from the loop'"
    assert isinstance(raised.exception(), ValueError)


def test_queued_calls_cancel_and_a_running_one_finishes(loop):
    release, ran = threading.Event(), []

    def blocker():
        wait(asyncio.to_thread(release.wait))
        ran.append("blocker")

    pool = GreenletExecutor(loop, max_workers=1)
    first = pool.submit(blocker)
    queued = [pool.submit(ran.append, i) for i in range(3)]
    deadline = time.monotonic() + 5
    while not first.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.running() and not first.cancel()  # running: cannot be cancelled
    pool.shutdown(wait=False, cancel_futures=True)
    assert all(future.cancelled() for future in queued)
    release.set()
    pool.shutdown(wait=True)
    first.result(timeout=5)
    assert ran == ["blocker"]
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(ran.append, 9)


def test_all_at_once_runs_together_keeps_order_and_raises_after_all_end(loop):
    flight, ended = InFlight(), []

    def player(name: str, fail: bool = False) -> str:
        flight.enter()
        wait(asyncio.sleep(0.05))
        flight.leave()
        ended.append(name)
        if fail:
            raise LookupError(name)
        return name.upper()

    def turn():
        return all_at_once([lambda n=n: player(n) for n in "abcd"])

    def failing_turn():
        return all_at_once([lambda: player("x"), lambda: player("y", fail=True),
                            lambda: player("z", fail=True)])

    with GreenletExecutor(loop, max_workers=1) as pool:
        together = pool.submit(turn).result(timeout=5)
        failure = pool.submit(failing_turn).exception(timeout=5)
    assert together == ["A", "B", "C", "D"] and flight.most == 4
    assert isinstance(failure, LookupError) and str(failure) == "y"  # the first in order
    assert {"x", "y", "z"} <= set(ended)  # every call ended before the raise


def test_steps_take_turns_so_what_a_step_schedules_runs_before_the_next_step(loop):
    """Three episodes resumed in one iteration of the loop: what each step schedules
    (as aiohttp's task that writes a request) runs before the next episode's step, not
    after all of them; and every episode gets its turn, in order."""
    log: list[str] = []

    def episode(name: str) -> None:
        for step in range(3):
            log.append(f"{name}{step}")
            asyncio.get_running_loop().call_soon(log.append, f"sent {name}{step}")
            wait(asyncio.sleep(0))  # resumed at once: all three are ready together

    with GreenletExecutor(loop, max_workers=3) as pool:
        for future in [pool.submit(episode, name) for name in "abc"]:
            future.result(timeout=5)
    steps = [entry for entry in log if not entry.startswith("sent")]
    assert steps == ["a0", "b0", "c0", "a1", "b1", "c1", "a2", "b2", "c2"]
    assert log == [entry for step in steps for entry in (step, f"sent {step}")]


# -- the model client on the loop -------------------------------------------------------

REQUEST = Request(messages=(Message("system", "You play a grid game."),
                            Message("user", "Pick an action.")),
                  valid_actions=("turn left", "turn right"), seed=7)


def _spec(url: str, **fields) -> ModelSpec:
    return ModelSpec(name="stub", backend="openai_compatible", model="stub",
                     base_url=f"{url}/v1", generation=Generation(max_tokens=8),
                     **{"timeout_s": 5.0, **fields})


def test_a_hung_call_on_the_loop_is_cut_at_its_deadline_while_the_others_go_on(loop):
    with openai_stub(script=["hang"], hang_s=3.0, answer="turn left") as stub:
        client = make_client(_spec(stub.url, timeout_s=1.0, max_retries=1), "off")
        client.policy = replace(client.policy, base_delay_s=0.01)
        try:
            with GreenletExecutor(loop, max_workers=8) as pool:
                hung = pool.submit(client.complete, REQUEST)
                while not stub.requests:  # the hung call is the first the stub saw
                    time.sleep(0.01)
                started = time.monotonic()
                others = [pool.submit(client.complete, REQUEST) for _ in range(6)]
                quick = [future.result(timeout=5) for future in others]
                quick_s = time.monotonic() - started
                retried = hung.result(timeout=5)
        finally:
            client.close()
    assert quick_s < 0.9  # answered while the hung call waited out its deadline
    assert all(c.text == "turn left" and c.retries == 0 for c in quick)
    assert retried.text == "turn left" and retried.retries == 1
    assert 1.0 <= retried.latency_s < 2.5


def test_a_call_slot_is_waited_for_on_the_loop_without_stopping_it(loop):
    """concurrency 2 with 6 calls on the loop: the others wait for a slot without
    blocking the loop (which frees the slots)."""
    flight = InFlight()

    def answer(body: dict) -> str:
        flight.enter()
        time.sleep(0.1)
        flight.leave()
        return "turn left"

    with openai_stub(answer_fn=answer) as stub:
        client = make_client(_spec(stub.url, concurrency=2), "off")
        try:
            with GreenletExecutor(loop, max_workers=6) as pool:
                futures = [pool.submit(client.complete, REQUEST) for _ in range(6)]
                texts = [future.result(timeout=10).text for future in futures]
        finally:
            client.close()
    assert texts == ["turn left"] * 6 and flight.most == 2


# -- a cell on the loop records what a cell on threads records --------------------------

class OnThreads(Client):
    """The same client, declared unable to await on the loop: its cell plays on threads."""

    def __init__(self, inner: Client):
        self.inner, self.max_concurrency = inner, inner.max_concurrency

    def complete(self, request: Request) -> Completion:
        return self.inner.complete(request)

    def close(self) -> None:
        self.inner.close()


def _answer_from_the_prompt(body: dict) -> str:
    """An answer that depends on the whole prompt: any mix-up of requests between
    players or episodes changes what is played."""
    actions = ("turn left", "turn right", "go forward", "pick up", "toggle")
    digest = sum(map(ord, json.dumps(body["messages"])))
    return actions[digest % len(actions)]


def _records(out) -> tuple[list[dict], list[dict]]:
    timing = {"latency_s", "duration_s", "timestamp", "started_at", "ended_at"}
    steps, episodes = ([{k: v for k, v in json.loads(line).items() if k not in timing}
                        for line in (out / name).read_text().splitlines()]
                       for name in ("steps.jsonl", "episodes.jsonl"))
    key = lambda record: (record["episode_index"], record.get("step", 0),  # noqa: E731
                          record.get("agent_id", ""))
    return sorted(steps, key=key), sorted(episodes, key=key)


@pytest.mark.parametrize(("env", "task", "episodes"), [("babyai", "goto", 6),
                                                       ("multigrid", "collect", 3)])
def test_a_cell_on_the_loop_records_exactly_what_a_cell_on_threads_records(
        tmp_path, env, task, episodes):
    """Collect's three players answer at once each step (``all_at_once`` on the loop)."""
    axes = (2, "visible_teammates") if env == "multigrid" else (None, None)
    with openai_stub(answer_fn=_answer_from_the_prompt) as stub:
        model = _spec(stub.url, concurrency=8)
        config = CellConfig(cell=Cell(model.name, "naive", env, task, *axes), model=model,
                            agent=AgentSpec("naive", "naive"), episodes=episodes,
                            max_steps=6, parallel_episodes=4, cache="off", seed=3)
        on_loop = make_client(model, "off")
        assert on_loop.awaits_on_loop
        run_cell(config, tmp_path / "loop", client=on_loop)
        on_loop.close()
        run_cell(config, tmp_path / "threads", client=OnThreads(make_client(model, "off")))
    assert _records(tmp_path / "loop") == _records(tmp_path / "threads")
    steps, _ = _records(tmp_path / "loop")
    assert len({s["action"] for s in steps}) > 1  # the answers did vary
    if env == "multigrid":
        assert len({s["agent_id"] for s in steps}) == 3


def test_fewer_collections_freezes_raises_and_restores_once_the_last_holder_leaves():
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] == max(YOUNGEST_THRESHOLD, before[0])
        assert gc.get_freeze_count() > 0
        with fewer_collections():
            pass
        assert gc.get_threshold()[0] == max(YOUNGEST_THRESHOLD, before[0])  # still held
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_sigterm_stops_a_cell_on_the_loop_and_a_rerun_plays_only_the_rest(tmp_path):
    """One process, episodes on the loop: SIGTERM mid-cell stops it at the episodes' next
    step, keeps the finished ones whole, and a rerun completes the cell."""
    out = tmp_path / "out"
    with openai_stub(answer_fn=slow_answer) as stub:
        args = ("run", "--params", str(_params(tmp_path, stub.url)), "--env", "babyai/goto",
                "--model", "stub", "--episodes", "18", "--max-steps", "6", "--parallel", "3",
                "--cache", "off", "--out", str(out))
        run = subprocess.Popen([str(BIN / "balrog-worker"), *args], text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_for_episodes(out, 3, run)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=60)
        assert run.returncode == 128 + signal.SIGTERM, stderr
        assert "terminated (SIGTERM); finished episodes are kept" in stderr
        kept = _indices(out)
        assert 3 <= len(kept) < 18 and len(kept) == len(set(kept))
        again = run_cli(*args)
        assert f"{len(kept)} of 18 episodes already recorded" in again.stderr
    assert sorted(_indices(out)) == list(range(18))
    steps = [(s["episode_index"], s["step"]) for s in records(out / "steps.jsonl")]
    assert len(steps) == len(set(steps)) == 108  # nothing recorded twice, nothing lost
