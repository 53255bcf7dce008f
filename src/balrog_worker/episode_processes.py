"""The episodes of one cell spread over worker processes, for a cell given several cores.

Episodes are threads of one process (``evaluator``), and one process runs Python on one
core at a time: a cell keeping hundreds of calls in flight, or playing a game whose
simulator costs more than its model calls, was capped near one core whatever Snakemake
gave it. Here the cell's process (the parent) keeps everything that makes a run
resumable and safe, and its workers only play:

* the parent holds the results directory: it alone commits an episode, as each one ends,
  exactly as the threaded run does; a worker that dies loses only the episodes it was
  playing, which a rerun plays again;
* the parent hands out episode indices from one queue (each played once, its seed from
  its index, as before), and the cell's spending is one shared number, checked before an
  episode starts as before;
* a worker builds its own model client (its own connections and, for the async clients,
  its own event loop) and opens the same response cache file (SQLite serialises them);
* stop signals reach the parent, which tells the workers through an event: they ignore
  SIGINT and SIGTERM themselves (a terminal or ``scancel`` signals the whole group), stop
  at their episodes' next step, and stop as well if the parent disappears.

Workers are forked where the parent runs no other thread (the command line's case: they
start in milliseconds, with everything imported), else started by a forkserver (a fork of
a process with threads can copy a lock some thread holds), which imports the package once
and, as ``spawn`` does, the caller's main module: a script calling ``run_cell`` with
``processes`` above 1 needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from balrog_worker.config import CellConfig

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the parent checks for a stop and for dead workers
JOIN_GRACE_S = 10.0  # how long stopped workers get to leave before they are killed

# The modules every worker needs, imported once by the forkserver.
_PRELOAD = ["balrog_worker.evaluator", "balrog_worker.envs", "balrog_worker.clients"]


class WorkerDied(RuntimeError):
    """A worker process ended with episodes still to play (killed, or out of memory)."""


@dataclass(frozen=True)
class Played:
    """What a worker sends back: an ended episode, a step of one (when the run streams
    telemetry), or an episode not started because the budget was spent."""

    kind: str  # "episode", "step" or "budget"
    steps: tuple = ()
    record: dict | None = None


def worker_processes(config: CellConfig, requested: int, episodes: int) -> int:
    """How many worker processes a cell of ``episodes`` to play uses when given
    ``requested`` cores: none (1 = play in this process) for a model that must exist
    once (the embedded one, or a vLLM server the cell starts), else at most one a core
    and one per episode."""
    models = [config.model, *([config.opponent_model] if config.opponent_model else [])]
    if any(model.backend == "local" or model.serve for model in models):
        return 1
    return max(1, min(requested, episodes))


def play_in_processes(config: CellConfig, todo: list[int], processes: int, *,
                      spent_usd: float, streaming: bool, stops) -> Iterator[Played]:
    """Play episodes ``todo`` over ``processes`` workers; yield each as it ends (and its
    steps first where ``streaming``). ``stops.check()`` is called between waits; whatever
    it raises stops the workers and propagates."""
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
    tasks, results = context.Queue(), context.Queue()
    stop, spending = context.Event(), context.Value("d", spent_usd)
    threads = -(-min(config.parallel_episodes, len(todo)) // processes)  # ceiling
    for index in todo:
        tasks.put(index)
    for _ in range(processes * threads):
        tasks.put(None)  # one "no more" per playing thread
    workers = [context.Process(
        target=_worker_main, name=f"{config.run_id}-worker-{n}", daemon=True,
        args=(config, tasks, results, stop, spending, threads, streaming,
              logging.getLogger().getEffectiveLevel()))
        for n in range(processes)]
    for worker in workers:
        worker.start()
    outstanding = len(todo)
    try:
        while outstanding:
            stops.check()
            try:
                played = results.get(timeout=POLL_S)
            except queue.Empty:
                if not any(worker.is_alive() for worker in workers):
                    _raise_died(workers, outstanding)
                continue
            if played.kind != "step":
                outstanding -= 1
            yield played
    except BaseException:
        stop.set()  # episodes in flight stop at their next step and are not recorded
        raise
    finally:
        _wind_down(workers, results)
    log.debug("%s: %d worker processes done", config.run_id, processes)


def _raise_died(workers, outstanding: int) -> None:
    codes = ", ".join(f"{w.name}: {_exit_text(w.exitcode)}" for w in workers)
    raise WorkerDied(f"the worker processes ended with {outstanding} episodes unfinished "
                     f"({codes}); rerun to play them")


def _exit_text(code: int | None) -> str:
    if code is None:
        return "running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def _wind_down(workers, results) -> None:
    """Let the workers leave, draining what they still send (a worker blocks at exit
    until its queue is read); kill any that will not."""
    for worker in workers:
        worker.join(timeout=0)
    deadline = time.monotonic() + JOIN_GRACE_S
    while any(worker.is_alive() for worker in workers) and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            results.get(timeout=POLL_S)
    for worker in workers:
        if worker.is_alive():
            worker.kill()
        worker.join()
    results.close()


# -- inside a worker ----------------------------------------------------------------------


class _SharedSpending:
    """The cell's dollars spent, one number for all its workers."""

    def __init__(self, value):
        self._value = value

    def add(self, cost: float) -> None:
        with self._value.get_lock():
            self._value.value += cost

    @property
    def total(self) -> float:
        return self._value.value


def _worker_main(config: CellConfig, tasks, results, stop, spending, threads: int,
                 streaming: bool, log_level: int) -> None:
    # Stops come from the parent (the event); the group's signals are the parent's to read.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from balrog_worker.clients import make_client
    from balrog_worker.evaluator import BudgetReached, CellRun, Interrupted

    parent = os.getppid()
    halt = threading.Event()  # the parent's stop, or the parent gone
    client = make_client(config.model, config.cache)
    rival = make_client(config.opponent_model, config.cache) if config.opponent_model else None
    try:
        runner = CellRun(config, client, None, halt, rival, spending=_SharedSpending(spending))
        if streaming:
            runner.emit = lambda kind, record: results.put(Played(kind, record=record))

        def play_some() -> None:
            while not halt.is_set():
                index = tasks.get()
                if index is None:
                    return
                try:
                    steps, record = runner.play(index)
                except BudgetReached:
                    results.put(Played("budget"))
                    continue
                except Interrupted:
                    return
                results.put(Played("episode", tuple(steps), record))

        players = [threading.Thread(target=play_some, name=f"episode-{n}", daemon=True)
                   for n in range(threads)]
        for player in players:
            player.start()
        _watch(players, stop, halt, lambda: os.getppid() != parent)
    finally:
        for made in (client, rival):
            if made:
                made.close()


def _watch(players: list[threading.Thread], stop, halt: threading.Event,
           orphaned: Callable[[], bool]) -> None:
    """Wait for the playing threads; pass a stop (or the parent's death) on to them."""
    while any(player.is_alive() for player in players):
        if stop.wait(POLL_S) or orphaned():
            halt.set()
            break
    for player in players:
        player.join()
