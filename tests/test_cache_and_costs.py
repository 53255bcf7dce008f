"""The response cache, token accounting, prices and the budget cap."""

import multiprocessing
import threading

import pytest

from balrog_worker.cells import Cell
from balrog_worker.clients.base import Client, Completion, Message, Request
from balrog_worker.clients.cache import CachedClient, ResponseCache, request_key
from balrog_worker.config import AgentSpec, CellConfig, ModelSpec, Price
from balrog_worker.evaluator import run_cell
from balrog_worker.store import read_jsonl

IDENTITY = ModelSpec("m", "openai", model="gpt-x").identity()


class Counting(Client):
    """A deterministic model that counts its calls and reports fixed usage."""

    def __init__(self):
        self.calls = 0
        self._lock = threading.Lock()

    def complete(self, request):
        with self._lock:
            self.calls += 1
        return Completion(text=request.valid_actions[request.seed % len(request.valid_actions)],
                          input_tokens=1000, output_tokens=10, cached_input_tokens=400)


def request(seed=1, text="hello"):
    return Request((Message("system", "rules"), Message("user", text)), ("a", "b"), seed)


def test_a_repeated_request_is_served_from_the_cache(tmp_path):
    inner = Counting()
    client = CachedClient(inner, IDENTITY, ResponseCache(tmp_path / "c.sqlite"))
    first = client.complete(request())
    assert client.complete(request()) == first and inner.calls == 1
    client.complete(request(seed=2))
    client.complete(request(text="other"))
    assert inner.calls == 3 and client.hits == 1


def test_refresh_calls_again_and_off_does_not_store(tmp_path):
    path = tmp_path / "c.sqlite"
    inner = Counting()
    CachedClient(inner, IDENTITY, ResponseCache(path)).complete(request())
    CachedClient(inner, IDENTITY, ResponseCache(path), "refresh").complete(request())
    assert inner.calls == 2
    CachedClient(inner, IDENTITY, ResponseCache(path), "off").complete(request(seed=9))
    assert ResponseCache(path).get(request_key(IDENTITY, request(seed=9))) is None
    with pytest.raises(ValueError, match="cache mode"):
        CachedClient(inner, IDENTITY, ResponseCache(path), "sometimes")


def test_generation_settings_are_part_of_the_key():
    hotter = ModelSpec("m", "openai", model="gpt-x").identity()
    hotter["generation"]["temperature"] = 0.1
    assert request_key(IDENTITY, request()) != request_key(hotter, request())


def _writer(path, start):
    cache = ResponseCache(path)
    for i in range(start, start + 150):
        cache.put(f"k{i}", Completion(text=str(i)))


def test_parallel_processes_share_the_cache_without_lock_errors(tmp_path):
    path = tmp_path / "shared.sqlite"
    ResponseCache(path)  # create the schema once
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_writer, args=(path, k * 150)) for k in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    cache = ResponseCache(path)
    assert all(cache.get(f"k{i}").text == str(i) for i in range(600))


def config(**overrides):
    spec = ModelSpec("priced", "openai", model="gpt-x",
                     price=Price(input=2.0, output=8.0, cached_input=0.5))
    values = {"cell": Cell("priced", "naive", "babyai", "goto"), "model": spec,
              "agent": AgentSpec("naive", "naive"), "episodes": 3, "max_steps": 4,
              "parallel_episodes": 1}
    return CellConfig(**{**values, **overrides})


def test_costs_follow_the_price_table_per_call_and_per_episode(tmp_path):
    run_cell(config(), tmp_path, client=Counting())
    steps, _ = read_jsonl(tmp_path / "steps.jsonl")
    per_call = (600 * 2.0 + 400 * 0.5 + 10 * 8.0) / 1e6
    assert all(s["cost_usd"] == pytest.approx(per_call) for s in steps)
    assert all(s["cached_input_tokens"] == 400 for s in steps)
    for episode in read_jsonl(tmp_path / "episodes.jsonl")[0]:
        assert episode["cost_usd"] == pytest.approx(per_call * episode["llm_calls"])


def test_a_budget_stops_new_episodes_cleanly_and_a_rerun_goes_on(tmp_path):
    per_episode = 4 * (600 * 2.0 + 400 * 0.5 + 10 * 8.0) / 1e6
    report = run_cell(config(budget_usd=per_episode * 1.5), tmp_path, client=Counting())
    assert report.budget_reached and report.failed == 0
    assert len(read_jsonl(tmp_path / "episodes.jsonl")[0]) == 2  # the second crossed it
    report = run_cell(config(budget_usd=per_episode * 10), tmp_path, client=Counting())
    assert not report.budget_reached
    assert sorted(e["episode_index"] for e in read_jsonl(tmp_path / "episodes.jsonl")[0]) == [
        0, 1, 2]
