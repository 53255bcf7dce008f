"""Run one cell: its episodes, concurrently, into a resumable results directory.

Each episode's environment seed derives from (base seed, env, task, episode index), and
each model call's seed from (episode seed, step, player), so a rerun replays the same
trajectories. A cell spends its time waiting on model calls, so its episodes are played
concurrently, without a process each: as greenlets of the process's event loop where
every model they call is sent from that loop (``cooperative``: the OpenAI-family
backends), else as threads. A cell given several cores (``processes``) spreads its
episodes over worker processes (``episode_processes``); this process still commits
every episode.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Executor, ThreadPoolExecutor, wait
from dataclasses import dataclass

from balrog_worker.agents import demonstrations_for
from balrog_worker.analysis.stats import cell_aggregate
from balrog_worker.clients import Client, make_client
from balrog_worker.clients.http import CallLoop
from balrog_worker.collector import fewer_collections
from balrog_worker.config import CellConfig
from balrog_worker.cooperative import GreenletExecutor
from balrog_worker.episode import Episode
from balrog_worker.episode_processes import play_in_processes, worker_processes
from balrog_worker.provenance import git_revision, package_versions
from balrog_worker.records import CellKeys, EpisodeRecord, Usage
from balrog_worker.seeding import episode_seed
from balrog_worker.stopping import stops_deferred
from balrog_worker.store import CellStore, StoreError
from balrog_worker.telemetry import RecordStream

log = logging.getLogger(__name__)

STOP_POLL_S = 0.2  # how soon a stop signal is acted on while episodes are played


class Interrupted(Exception):
    """The run is stopping; the episode in progress is abandoned, not recorded."""


class BudgetReached(Exception):
    """The cell's budget is spent: episodes not yet started are left for a later run."""


class Spending:
    """The dollars a cell's calls have spent, shared by its episode threads (a cell over
    worker processes shares one across them: ``episode_processes``)."""

    def __init__(self, start: float = 0.0):
        self.total = start
        self._lock = threading.Lock()

    def add(self, cost: float) -> None:
        with self._lock:
            self.total += cost


@dataclass(frozen=True)
class CellReport:
    ran: int
    failed: int
    skipped: int
    summary: dict
    budget_reached: bool = False


class CellRun:
    """The episodes of one cell: each an ``episode.Episode`` of the cell's game, its
    players driven by the cell's agent and model."""

    def __init__(self, config: CellConfig, client: Client, stream: RecordStream | None,
                 stop: threading.Event, rival: Client | None = None,
                 spending: Spending | None = None):
        self.config = config
        self.client = client
        self.rival = rival  # the other side's model (Soccer with opponent model:<name>)
        self.stream = stream
        self.stop = stop
        self.keys = CellKeys(run_id=config.run_id, **config.cell.keys())
        self.spending = spending or Spending()

    @property
    def spent_usd(self) -> float:
        return self.spending.total

    def cost(self, completion, model=None) -> float:
        """The dollar cost of one call (0 without a price), added to the cell's spending."""
        price = (model or self.config.model).price
        if price is None:
            return 0.0
        cost = price.cost(completion.input_tokens, completion.output_tokens,
                          completion.cached_input_tokens)
        self.spending.add(cost)
        return cost

    def check_stop(self) -> None:
        if self.stop.is_set():
            raise Interrupted

    def emit(self, kind: str, record: dict) -> None:
        if self.stream:
            self.stream.emit(kind, record)

    def episode(self, index: int) -> Episode:
        """Episode ``index`` of the cell, ready to play."""
        config, cell = self.config, self.config.cell
        extra = ()
        if config.agent.type == "few_shot":
            extra = (("demonstrations", [d.provenance() for d in demonstrations_for(config)]),)
        seed = episode_seed(config.seed, cell.env, cell.task, index)
        return Episode.of_cell(config, self.client, index, seed, rival=self.rival, extra=extra,
                               price=self.cost,
                               on_step=lambda record: self.emit("step", record),
                               check_stop=self.check_stop)

    def play(self, index: int) -> tuple[list[dict], dict]:
        """One episode: its step records and its episode record (failed ones included)."""
        budget = self.config.budget_usd
        if budget is not None and self.spent_usd >= budget:
            raise BudgetReached
        started = time.perf_counter()
        episode = self.episode(index)
        try:
            record = episode.play()
            return [step.to_dict() for step in episode.records], record.to_dict()
        except (Interrupted, BudgetReached):
            raise
        except Exception as error:  # recorded, never fatal to the cell
            log.exception("%s episode %d failed", self.config.run_id, index)
            # The steps are dropped (a rerun plays the episode again), but the calls they
            # made were paid for: their usage stays on the failed record.
            usage = sum((step.usage for step in episode.records), Usage())
            failed = EpisodeRecord(
                keys=self.keys, episode_index=index, seed=episode.settings.seed,
                num_steps=len(episode.records), llm_calls=len(episode.records), usage=usage,
                end_reason="error", duration_s=round(time.perf_counter() - started, 4),
                failed=True, error=f"{type(error).__name__}: {error}")
            return [], failed.to_dict()


def run_cell(config: CellConfig, out_dir, *, client: Client | None = None,
             stream: RecordStream | None = None, rival: Client | None = None,
             processes: int = 1, on_commit: Callable[[], None] | None = None) -> CellReport:
    """Run the episodes of ``config`` missing from ``out_dir`` and write its summary.
    ``rival`` drives the other side where the opponent is a model (made if not given).
    ``processes``: the cores the cell may use; above 1 its episodes are played by worker
    processes, each with clients of its own (not with ``client`` or ``rival``, which
    then must not be given). ``on_commit`` is called after each recorded episode (the
    checkpoint of a job without a shared filesystem)."""
    if processes > 1 and (client or rival):
        raise ValueError("run_cell: clients given to the call cannot be shared with "
                         "worker processes; give processes=1")
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
        spent = sum(e.get("cost_usd", 0.0) for e in done.values())
        processes = worker_processes(config, processes, len(todo))
        if todo and processes > 1:
            failed, budget_reached = _run_in_processes(config, stream, store, todo, done,
                                                       spent, processes, on_commit)
        elif todo:
            owned = [made for made in (
                None if client else make_client(config.model, config.cache),
                None if rival or not config.opponent_model
                else make_client(config.opponent_model, config.cache)) if made]
            client = client or owned[0]
            rival = rival or (owned[-1] if config.opponent_model else None)
            try:
                failed, budget_reached = _run_episodes(config, client, stream, store, todo,
                                                       done, spent, rival, on_commit)
            finally:
                for made in owned:
                    made.close()
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
                  spent: float, rival: Client | None = None,
                  on_commit: Callable[[], None] | None = None) -> tuple[int, bool]:
    """Play the episodes ``todo`` and commit each as it ends; return how many failed and
    whether the budget stopped the run."""
    stop = threading.Event()
    runner = CellRun(config, client, stream, stop, rival, spending=Spending(spent))
    progress = _Progress(config, store, stream, done, on_commit)
    workers = min(config.parallel_episodes, len(todo), client.max_concurrency or len(todo))
    with episode_executor(workers, client, rival) as pool, stops_deferred() as stops:
        pending = {pool.submit(runner.play, i) for i in todo}
        try:
            while pending:
                # A stop (Ctrl-C, SIGTERM) is raised here, between waits, never inside one.
                stops.check()
                completed, pending = wait(pending, timeout=STOP_POLL_S,
                                          return_when=FIRST_COMPLETED)
                for future in completed:
                    try:
                        steps, episode = future.result()
                    except BudgetReached:
                        progress.budget_reached = True
                        continue
                    progress.commit(steps, episode)
        except BaseException:
            stop.set()  # episodes in flight stop at their next step and are not recorded
            for future in pending:
                future.cancel()
            raise
    return progress.end(runner.spent_usd)


@contextlib.contextmanager
def episode_executor(width: int, *clients: Client | None) -> Iterator[Executor]:
    """An executor playing episodes ``width`` at a time: greenlets of the process's
    event loop when every client given sends its calls from there, else threads; the
    garbage collector set for many episodes while it runs. Leaving waits for every
    episode submitted (cancel the queued ones first to stop sooner)."""
    with fewer_collections():
        if all(made is None or made.awaits_on_loop for made in clients):
            calls = CallLoop.hold()
            try:
                with GreenletExecutor(calls.loop, max_workers=width) as pool:
                    yield pool
            finally:
                calls.release()
        else:
            with ThreadPoolExecutor(max_workers=width, thread_name_prefix="episode") as pool:
                yield pool


def _run_in_processes(config: CellConfig, stream: RecordStream | None, store: CellStore,
                      todo: list[int], done: dict[int, dict], spent: float,
                      processes: int,
                      on_commit: Callable[[], None] | None = None) -> tuple[int, bool]:
    """``_run_episodes`` with the episodes played by ``processes`` worker processes."""
    progress = _Progress(config, store, stream, done, on_commit)
    log.info("%s: %d episodes over %d worker processes", config.run_id, len(todo), processes)
    with stops_deferred() as stops:
        for played in play_in_processes(config, todo, processes, spent_usd=spent,
                                        streaming=stream is not None, stops=stops):
            if played.kind == "step":
                stream.emit("step", played.record)
            elif played.kind == "budget":
                progress.budget_reached = True
            else:
                progress.commit(list(played.steps), played.record)
    return progress.end(spent + sum(
        e.get("cost_usd", 0.0) for e in progress.committed))


class _Progress:
    """Committing each episode as it ends, and saying so."""

    def __init__(self, config: CellConfig, store: CellStore, stream: RecordStream | None,
                 done: dict[int, dict], on_commit: Callable[[], None] | None = None):
        self.config, self.store, self.stream, self.done = config, store, stream, done
        self.on_commit = on_commit
        self.failed, self.finished, self.budget_reached = 0, len(done), False
        self.committed: list[dict] = []

    def commit(self, steps: list[dict], episode: dict) -> None:
        self.store.commit(steps, episode)
        self.committed.append(episode)
        if self.stream:
            self.stream.emit("episode", episode)
        if episode["failed"]:
            self.failed += 1
        else:
            self.done[episode["episode_index"]] = episode
        self.finished += 1
        log.info("%s [%d/%d] episode %d: %s, progression %.2f, %d steps, %.1fs",
                 self.config.run_id, self.finished, self.config.episodes,
                 episode["episode_index"], episode["end_reason"],
                 episode.get("progression") or 0.0, episode["num_steps"],
                 episode["duration_s"])
        if self.on_commit:
            self.on_commit()

    def end(self, spent_usd: float) -> tuple[int, bool]:
        """How many episodes failed, and whether the budget stopped the run."""
        if self.budget_reached:
            log.warning("%s: budget of $%.2f reached ($%.2f spent); the remaining episodes "
                        "are left for a later run", self.config.run_id,
                        self.config.budget_usd, spent_usd)
        return self.failed, self.budget_reached


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
