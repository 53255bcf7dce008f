"""The episodes of one cell spread over worker processes, for a cell given several cores.

A process runs Python on one core at a time, however it plays its episodes (greenlets or
threads: ``evaluator``): a cell keeping hundreds of calls in flight, or playing a game whose
simulator costs more than its model calls, was capped near one core whatever Snakemake
gave it. Here the cell's process (the parent) keeps everything that makes a run
resumable and safe, and its workers only play:

* the parent holds the results directory: it alone commits an episode, as each one ends,
  exactly as a run in one process does;
* the parent hands out episode indices, one per free playing slot of a worker (each
  index played once, its seed from its index as before), and starts no episode once the
  committed episodes have spent the cell's budget;
* a worker builds its own model client (its own connections and, for the async clients,
  its own event loop, on which its episodes then play) and opens the same response
  cache file (SQLite serialises them);
* each worker talks to the parent over a pipe of its own, never a queue or lock shared
  with the other workers: a worker killed mid-message (SIGKILL, the OOM killer) ends its
  own pipe and nothing else. The episodes it was playing are lost (a rerun plays them);
  the others play on, and the run then ends with ``WorkerDied``, in one line;
* stop signals reach the parent, which passes the stop on through the pipes: workers
  ignore SIGINT and SIGTERM themselves (a terminal or ``scancel`` signals the whole
  group), stop at their episodes' next step, and stop as well if the parent disappears.

Workers are forked where the parent runs no other thread (the command line's case: they
start in milliseconds, with everything imported), else started by a forkserver (a fork of
a process with threads can copy a lock some thread holds), which imports the package once
and, as ``spawn`` does, the caller's main module: a script calling ``run_cell`` with
``processes`` above 1 needs the ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait

from balrog_worker.config import CellConfig

log = logging.getLogger(__name__)

POLL_S = 0.2  # how often the parent checks for a stop
JOIN_GRACE_S = 10.0  # how long stopped workers get to leave before they are killed

# The modules every worker needs, imported once by a forkserver.
_PRELOAD = ["balrog_worker.evaluator", "balrog_worker.envs", "balrog_worker.clients"]


class WorkerDied(RuntimeError):
    """A worker process ended with episodes unfinished (killed, or out of memory)."""


@dataclass(frozen=True)
class Played:
    """What a worker sends back: an ended episode, a step of one (when the run streams
    telemetry), or an episode not started because the budget was spent."""

    kind: str  # "episode", "step" or "budget"
    index: int = -1
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


@dataclass
class _Worker:
    process: multiprocessing.Process
    pipe: Connection
    at_once: int  # episodes it plays at once
    playing: set[int] = field(default_factory=set)  # indices handed out, not yet back
    alive: bool = True


def play_in_processes(config: CellConfig, todo: list[int], processes: int, *,
                      spent_usd: float, streaming: bool, stops) -> Iterator[Played]:
    """Play episodes ``todo`` over ``processes`` workers; yield each as it ends (and its
    steps first where ``streaming``). ``stops.check()`` is called between waits; whatever
    it raises stops the workers and propagates. Raises WorkerDied at the end if a worker
    died with episodes unfinished."""
    if threading.active_count() == 1:
        context = multiprocessing.get_context("fork")
    else:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
    at_once = -(-min(config.parallel_episodes, len(todo)) // processes)  # ceiling
    workers = []
    for n in range(processes):
        parent_end, child_end = context.Pipe()
        process = context.Process(
            target=_worker_main, name=f"{config.run_id}-worker-{n}", daemon=True,
            args=(config, child_end, at_once, spent_usd, streaming,
                  logging.getLogger().getEffectiveLevel()))
        process.start()
        child_end.close()
        workers.append(_Worker(process, parent_end, at_once))
    waiting = list(reversed(todo))  # popped from the end: lowest index first
    spent, budget = spent_usd, config.budget_usd
    lost: list[int] = []
    try:
        for worker in workers:
            _hand_out(worker, waiting, budget_left=budget is None or spent < budget)
        while any(worker.playing for worker in workers):
            stops.check()
            by_pipe = {worker.pipe: worker for worker in workers if worker.alive}
            for pipe in wait(list(by_pipe), timeout=POLL_S):
                worker = by_pipe[pipe]
                try:
                    played = pipe.recv()
                except (EOFError, OSError):  # the worker is gone, mid-message or not
                    worker.alive = False
                    lost.extend(sorted(worker.playing))
                    worker.playing.clear()
                    continue
                if played.kind != "step":
                    worker.playing.discard(played.index)
                    if played.record:
                        spent += played.record.get("cost_usd") or 0.0
                    _hand_out(worker, waiting, budget_left=budget is None or spent < budget)
                yield played
    except BaseException:
        for worker in workers:  # episodes in flight stop at their next step
            _send(worker, "stop")
        raise
    finally:
        _wind_down(workers)
    if waiting and not lost and budget is not None and spent >= budget:
        yield from (Played("budget", index) for index in waiting)
    elif waiting or lost:
        died = [w for w in workers if not w.alive]
        codes = ", ".join(f"{w.process.name}: {_exit_text(w.process.exitcode)}"
                          for w in died)
        raise WorkerDied(f"{len(lost) + len(waiting)} episodes unfinished: "
                         f"{len(died)} of {len(workers)} worker processes died ({codes}); "
                         "the others' episodes are kept, a rerun plays the rest")


def _hand_out(worker: _Worker, waiting: list[int], *, budget_left: bool) -> None:
    """Fill the worker's free playing slots with the next episodes."""
    while worker.alive and budget_left and waiting and len(worker.playing) < worker.at_once:
        index = waiting.pop()
        if not _send(worker, index):
            waiting.append(index)
            return
        worker.playing.add(index)


def _send(worker: _Worker, message) -> bool:
    if not worker.alive:
        return False
    try:
        worker.pipe.send(message)
        return True
    except (BrokenPipeError, OSError):
        return False  # gone: its pipe's end is read next and says so


def _exit_text(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def _wind_down(workers: list[_Worker]) -> None:
    """Tell the workers there is no more work, let them leave (reading what they still
    send, so that none blocks on a full pipe), kill any that will not."""
    for worker in workers:
        _send(worker, None)
    deadline = time.monotonic() + JOIN_GRACE_S
    while time.monotonic() < deadline:
        running = [w for w in workers if w.process.is_alive()]
        if not running:
            break
        for pipe in wait([w.pipe for w in running if w.alive], timeout=POLL_S):
            try:
                pipe.recv()
            except (EOFError, OSError):
                next(w for w in running if w.pipe is pipe).alive = False
    for worker in workers:
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        worker.pipe.close()


# -- inside a worker ----------------------------------------------------------------------


def _worker_main(config: CellConfig, pipe: Connection, at_once: int, spent_usd: float,
                 streaming: bool, log_level: int) -> None:
    # Stops come from the parent, through the pipe; the group's signals are the parent's.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=log_level, format="%(asctime)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    from balrog_worker.clients import make_client
    from balrog_worker.evaluator import (
        BudgetReached,
        CellRun,
        Interrupted,
        Spending,
        episode_executor,
    )

    halt = threading.Event()  # the parent's stop, or the parent gone
    sending = threading.Lock()  # one message at a time on the pipe

    def send(played: Played) -> None:
        with sending:
            pipe.send(played)

    def report(index: int, future: Future) -> None:
        """Send back how episode ``index`` ended (an interrupted one is not sent)."""
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            steps, record = future.result()
            send(Played("episode", index, tuple(steps), record))
        elif isinstance(error, BudgetReached):
            send(Played("budget", index))
        elif not isinstance(error, Interrupted):
            log.error("%s episode %d: %s", config.run_id, index, error)

    client = make_client(config.model, config.cache)
    rival = make_client(config.opponent_model, config.cache) if config.opponent_model else None
    try:
        runner = CellRun(config, client, None, halt, rival, spending=Spending(spent_usd))
        if streaming:
            runner.emit = lambda kind, record: send(Played(kind, record=record))
        with episode_executor(at_once, client, rival) as players:
            for index in _episodes_from(pipe, halt):
                players.submit(runner.play, index).add_done_callback(
                    functools.partial(report, index))
            players.shutdown(cancel_futures=halt.is_set())
    finally:
        for made in (client, rival):
            if made:
                made.close()


def _episodes_from(pipe: Connection, halt: threading.Event) -> Iterator[int]:
    """The parent's episode indices, until it has no more (None), says stop, or is gone
    (both of which set ``halt``)."""
    try:
        while (message := pipe.recv()) is not None:
            if message == "stop":
                halt.set()
                return
            yield message
    except (EOFError, OSError):
        halt.set()  # the parent died
