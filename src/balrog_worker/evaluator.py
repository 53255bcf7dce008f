"""Run one cell: its episodes, concurrently, into a resumable results directory.

Each episode's environment seed derives from (base seed, env, task, episode index), and
each model call's seed from (episode seed, step, player), so a rerun replays the same
trajectories. Episodes are threads: a cell spends its time waiting on model calls, and
threads keep many of them in flight without a process per episode.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass

from balrog_worker import envs
from balrog_worker.agents import demonstrations_for, invalid_action_note, make_agent
from balrog_worker.analysis.stats import cell_aggregate
from balrog_worker.clients import Client, make_client
from balrog_worker.clients.images import encode_png
from balrog_worker.config import CellConfig
from balrog_worker.provenance import git_revision, package_versions
from balrog_worker.seeding import derive_seed, episode_seed
from balrog_worker.store import CellStore, StoreError
from balrog_worker.telemetry import RecordStream

log = logging.getLogger(__name__)

PLAYER = "agent_0"  # single-agent games have one player


class Interrupted(Exception):
    """The run is stopping; the episode in progress is abandoned, not recorded."""


class BudgetReached(Exception):
    """The cell's budget is spent: episodes not yet started are left for a later run."""


@dataclass(frozen=True)
class CellReport:
    ran: int
    failed: int
    skipped: int
    summary: dict
    budget_reached: bool = False


class CellRun:
    def __init__(self, config: CellConfig, client: Client, stream: RecordStream | None,
                 stop: threading.Event):
        self.config = config
        self.client = client
        self.stream = stream
        self.stop = stop
        self.keys = {"run_id": config.run_id, **config.cell.keys()}
        self.spent_usd = 0.0
        self._spending = threading.Lock()

    def cost(self, completion) -> float:
        """The dollar cost of one call (0 without a price), added to the cell's spending."""
        price = self.config.model.price
        if price is None:
            return 0.0
        cost = price.cost(completion.input_tokens, completion.output_tokens,
                          completion.cached_input_tokens)
        with self._spending:
            self.spent_usd += cost
        return cost

    def account(self, totals: dict, usage) -> dict:
        """Add one call's usage to an episode's ``totals``; return the step's fields."""
        call = {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "reasoning_tokens": usage.reasoning_tokens, "retries": usage.retries,
                "cost_usd": round(self.cost(usage), 8), "latency_s": round(usage.latency_s, 6)}
        totals["llm_calls"] += 1
        for key in USAGE_FIELDS:
            totals[key] += call[key]
        return call

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def emit(self, kind: str, record: dict) -> None:
        if self.stream:
            self.stream.emit(kind, record)

    def play(self, index: int) -> tuple[list[dict], dict]:
        """One episode: its step records and its episode record (failed ones included)."""
        cell = self.config.cell
        budget = self.config.budget_usd
        if budget is not None and self.spent_usd >= budget:
            raise BudgetReached
        seed = episode_seed(self.config.seed, cell.env, cell.task, index)
        started = time.perf_counter()
        steps: list[dict] = []
        try:
            if envs.FAMILIES[cell.env].multi_agent:
                episode = envs.FAMILIES[cell.env].load()(self, cell.task).play(index, seed, steps)
            else:
                episode = self._play_single(index, seed, steps)
        except (Interrupted, BudgetReached):
            raise
        except Exception as error:  # recorded, never fatal to the cell
            log.exception("%s episode %d failed", self.config.run_id, index)
            # The steps are dropped (a rerun plays the episode again), but the calls they
            # made were paid for: their usage stays on the failed record.
            episode = {"failed": True, "error": f"{type(error).__name__}: {error}",
                       "end_reason": "error", "num_steps": len(steps), **usage_of(steps)}
            steps = []
        episode = {**self.keys, "episode_index": index, "seed": seed, **episode,
                   "duration_s": round(time.perf_counter() - started, 4)}
        return steps, episode

    def _play_single(self, index: int, seed: int, steps: list[dict]) -> dict:
        game = envs.make(self.config.cell.env, self.config.cell.task)
        try:
            return self._play(game, index, seed, steps)
        finally:
            game.close()

    def _play(self, game: envs.Game, index: int, seed: int, steps: list[dict]) -> dict:
        config = self.config
        observation = game.reset(seed)
        agent = make_agent(config, self.client, game.instructions())
        vision = config.agent.max_image_history > 0
        note = ""
        totals = {"episode_return": 0.0, "invalid_actions": 0, **empty_usage()}
        terminated = truncated = False
        step = 0
        while not (terminated or truncated) and step != config.max_steps:
            self.check_stop()
            image = encode_png(game.frame()) if vision else None
            decision = agent.act(observation, tuple(game.actions),
                                 derive_seed(seed, step, PLAYER), note,
                                 oracle=game.oracle_action, image=image)
            valid = game.is_valid(decision.candidate)
            action = decision.candidate if valid else game.default_action
            agent.record(action)
            outcome = game.step(action)
            usage = decision.completion
            totals["episode_return"] += outcome.reward
            totals["invalid_actions"] += not valid
            call = self.account(totals, usage)
            record = {
                **self.keys, "episode_index": index, "step": step, "agent_id": PLAYER,
                "observation": decision.shown, "completion": usage.text,
                "reasoning": decision.reasoning, "candidate": decision.candidate,
                "action": action, "valid": valid, "reward": outcome.reward,
                "terminated": outcome.terminated, "truncated": outcome.truncated, **call,
            }
            steps.append(record)
            self.emit("step", record)
            note = "" if valid or not config.agent.invalid_feedback else (
                invalid_action_note(game.default_action))
            observation = outcome.observation
            terminated, truncated = outcome.terminated, outcome.truncated
            step += 1
        progression = game.progression()
        return {
            "num_steps": step, **totals, "progression": progression,
            "success": progression >= 1.0,
            "end_reason": _end_reason(terminated, truncated, progression),
            "terminated": terminated, "truncated": truncated or not terminated,
            "failed": False, "error": None, **game.episode_info(),
            **protocol_fields(config),
        }


# What each call's step record carries and its episode record sums.
USAGE_FIELDS = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens",
                "retries", "cost_usd")


def empty_usage() -> dict:
    return {"llm_calls": 0, **dict.fromkeys(USAGE_FIELDS, 0), "cost_usd": 0.0}


def usage_of(steps: list[dict]) -> dict:
    """The usage totals of the calls behind ``steps`` (one call per step record)."""
    totals = empty_usage()
    totals["llm_calls"] = len(steps)
    for key in USAGE_FIELDS:
        totals[key] += sum(step.get(key, 0) for step in steps)
    totals["cost_usd"] = round(totals["cost_usd"], 8)
    return totals


def protocol_fields(config: CellConfig) -> dict:
    """What an episode record says about how it was played where that can differ from
    BALROG: the answer reading, and the few-shot demonstrations' provenance."""
    fields = {"answer_parsing": config.agent.answer_parsing}
    if config.agent.type == "few_shot":
        fields["demonstrations"] = [d.provenance() for d in demonstrations_for(config)]
    return fields


def _end_reason(terminated: bool, truncated: bool, progression: float) -> str:
    if terminated:
        return "success" if progression >= 1.0 else "terminated"
    return "truncated" if truncated else "max_steps"


def run_cell(config: CellConfig, out_dir, *, client: Client | None = None,
             stream: RecordStream | None = None) -> CellReport:
    """Run the episodes of ``config`` missing from ``out_dir`` and write its summary."""
    with CellStore(out_dir) as store:
        store.claim(config.trajectory_keys())
        done = store.completed()
        _check_same_cell(config, done, out_dir)
        todo = [i for i in range(config.episodes) if i not in done]
        skipped = config.episodes - len(todo)
        if skipped:
            log.info("%s: %d of %d episodes already recorded", config.run_id, skipped,
                     config.episodes)
        failed, budget_reached = 0, False
        if todo:
            owned = client is None
            client = client or make_client(config.model, config.cache)
            spent = sum(e.get("cost_usd", 0.0) for e in done.values())
            try:
                failed, budget_reached = _run_episodes(config, client, stream, store, todo,
                                                       done, spent)
            finally:
                if owned:
                    client.close()
        episodes = [done[i] for i in sorted(done) if i < config.episodes]
        summary = {
            **config.public(),
            "versions": package_versions(),
            "git_revision": git_revision(),
            "aggregate": {**cell_aggregate(episodes), "failed_episodes": failed},
        }
        store.write_summary(summary)
    return CellReport(ran=len(todo), failed=failed, skipped=skipped, summary=summary,
                      budget_reached=budget_reached)


def _run_episodes(config: CellConfig, client: Client, stream: RecordStream | None,
                  store: CellStore, todo: list[int], done: dict[int, dict],
                  spent: float) -> tuple[int, bool]:
    """Play the episodes ``todo`` and commit each as it ends; return how many failed and
    whether the budget stopped the run."""
    stop = threading.Event()
    runner = CellRun(config, client, stream, stop)
    runner.spent_usd = spent
    failed = 0
    budget_reached = False
    finished = len(done)
    workers = min(config.parallel_episodes, len(todo), client.max_concurrency or len(todo))
    with ThreadPoolExecutor(max_workers=workers,
                            thread_name_prefix="episode") as pool:
        pending = {pool.submit(runner.play, i) for i in todo}
        try:
            while pending:
                completed, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in completed:
                    try:
                        steps, episode = future.result()
                    except BudgetReached:
                        budget_reached = True
                        continue
                    store.commit(steps, episode)
                    if stream:
                        stream.emit("episode", episode)
                    if episode["failed"]:
                        failed += 1
                    else:
                        done[episode["episode_index"]] = episode
                    finished += 1
                    log.info(
                        "%s [%d/%d] episode %d: %s, progression %.2f, %d steps, %.1fs",
                        config.run_id, finished, config.episodes, episode["episode_index"],
                        episode["end_reason"], episode.get("progression", 0.0),
                        episode["num_steps"], episode["duration_s"],
                    )
        except BaseException:
            stop.set()  # episodes in flight stop at their next step and are not recorded
            for future in pending:
                future.cancel()
            raise
    if budget_reached:
        log.warning("%s: budget of $%.2f reached ($%.2f spent); the remaining episodes are "
                    "left for a later run", config.run_id, config.budget_usd, runner.spent_usd)
    return failed, budget_reached


def _check_same_cell(config: CellConfig, done: dict[int, dict], out_dir) -> None:
    for index, record in done.items():
        if record.get("run_id") != config.run_id:
            raise StoreError(
                f"{out_dir} holds records of cell {record.get('run_id')!r}, not "
                f"{config.run_id!r}; choose another --out"
            )
        expected = episode_seed(config.seed, config.cell.env, config.cell.task, index)
        if record.get("seed") != expected:
            raise StoreError(
                f"{out_dir}: episode {index} was recorded with seed {record.get('seed')}, but "
                f"base seed {config.seed} gives {expected}; use the same --seed or another --out"
            )
