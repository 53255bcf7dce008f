"""`balrog-worker`: list environments, validate a grid, run a cell, aggregate results."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from pathlib import Path

from balrog_worker import __version__, vocab

log = logging.getLogger("balrog_worker")

EXIT_BAD_INPUT = 2
EXIT_EPISODES_FAILED = 3
EXIT_BUDGET_REACHED = 4
DEFAULT_PARAMS = "params.yaml"


class UsageError(Exception):
    pass


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (no usage block) and exit code 2."""

    def error(self, message: str):
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message.splitlines()[0]}\n")


def main(argv: list[str] | None = None, *, as_mosaic_module: bool = False) -> int:
    """``balrog-worker``'s commands, or MOSAIC's worker command line (flags and no
    subcommand; ``as_mosaic_module``: started as ``python -m balrog_worker.cli``, where
    even no arguments at all are MOSAIC's, which asks for --run-id)."""
    argv = sys.argv[1:] if argv is None else argv
    from balrog_worker import mosaic

    # MOSAIC's launcher: flags, no subcommand
    if mosaic.is_mosaic_command_line(argv) or (as_mosaic_module and not argv):
        return mosaic.main(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    # Several simulators import pkg_resources and warn about it on every run.
    warnings.filterwarnings("ignore", message="pkg_resources is deprecated")
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S", stream=sys.stderr,
    )
    from balrog_worker.checkpoint import CheckpointError
    from balrog_worker.clients.cache import CacheError
    from balrog_worker.clients.vllm_server import ServerError
    from balrog_worker.clients.weights import WeightsError
    from balrog_worker.config import ConfigError
    from balrog_worker.episode_processes import WorkerDied
    from balrog_worker.secrets import redact
    from balrog_worker.stopping import (
        EXIT_INTERRUPTED,
        EXIT_TERMINATED,
        Terminated,
        sigterm_interrupts,
    )
    from balrog_worker.store import DiskFull, StoreError

    try:
        with sigterm_interrupts():
            return args.handler(args)
    # A full disk, a damaged cache, a server that did not come up, a worker process
    # killed, a checkpoint's storage out of reach: the machine's fault, not the input's.
    except (DiskFull, CacheError, ServerError, WorkerDied, CheckpointError) as error:
        print(f"balrog-worker: error: {redact(str(error))}", file=sys.stderr)
        return 1
    except (UsageError, ConfigError, StoreError, WeightsError) as error:
        print(f"balrog-worker: error: {redact(str(error))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Terminated:
        print("balrog-worker: terminated (SIGTERM); finished episodes are kept, a rerun "
              "goes on from them", file=sys.stderr)
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        print("balrog-worker: interrupted; finished episodes are kept, a rerun goes on "
              "from them", file=sys.stderr)
        return EXIT_INTERRUPTED


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(prog="balrog-worker", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings only")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    envs_cmd = sub.add_parser("envs", help="print every available env/task id, one a line")
    envs_cmd.set_defaults(handler=cmd_envs)

    validate = sub.add_parser("validate", help="check a params file and count its grid cells")
    validate.add_argument("params", nargs="?", default=DEFAULT_PARAMS)
    validate.add_argument("--cells", action="store_true", help="also print each cell's slug")
    validate.set_defaults(handler=cmd_validate)

    run = sub.add_parser("run", help="run the episodes of one cell into --out")
    run.add_argument("--out", required=True, type=Path, help="results directory of the cell")
    run.add_argument("--params", type=Path,
                     help=f"params file defining models and agents (default: ./{DEFAULT_PARAMS} "
                          "if present)")
    run.add_argument("--config", type=Path,
                     help="a cell config instead of the flags below: MOSAIC's JSON (worker, "
                          "model, backend, environment, num_episodes, ...) or a resolved one "
                          "(the cell.json Snakemake writes)")
    run.add_argument("--env", help="env family, or env/task")
    run.add_argument("--task", help="task id (see `balrog-worker envs`)")
    run.add_argument("--model",
                     help="a name under models: in the params file, or the built-in 'random'")
    run.add_argument("--agent", default="naive", help="agent name or type (default: naive)")
    run.add_argument("--episodes", type=_positive, help="episodes (default: params, else 1)")
    run.add_argument("--max-steps", type=_positive,
                     help="step cap per episode (default: params, else the game's own)")
    run.add_argument("--seed", type=_non_negative, help="base seed (default: params, else 0)")
    run.add_argument("--parallel", type=_positive, help="episodes played concurrently")
    run.add_argument("--coordination-level", type=int, choices=vocab.COORDINATION_LEVELS,
                     help="multi-agent envs only (default 1)")
    run.add_argument("--observation-mode", choices=vocab.OBSERVATION_MODES,
                     help="multi-agent envs only (default egocentric)")
    run.add_argument("--opponent", choices=vocab.OPPONENT_POLICIES,
                     help="multi-agent envs only: who plays the other team (default scripted)")
    run.add_argument("--cache", choices=vocab.CACHE_MODES,
                     help="the response cache (default: params, else on)")
    run.add_argument("--budget-usd", type=float,
                     help="stop starting episodes once the cell has spent this much")
    run.add_argument("--emit-jsonl", action="store_true",
                     help="also stream every record to stdout as one JSON line")
    run.add_argument("--processes", type=_positive, default=1,
                     help="cores the cell may use: above 1, its episodes are played by "
                          "that many worker processes (API and baseline models; the "
                          "embedded model and a served vLLM stay in one). Snakemake "
                          "passes the job's threads (default: 1)")
    run.add_argument("--checkpoint", metavar="URL", default="",
                     help="s3://BUCKET/KEY: keep the cell's records there while it runs, "
                          "and resume from them in a fresh directory (jobs without a "
                          "shared filesystem; Snakemake passes it where there is a default "
                          "storage provider; see docs/cluster.md)")
    run.set_defaults(handler=cmd_run)

    serve = sub.add_parser("serve", help="drive one game with JSON commands on stdin "
                                         "(init, reset, step, select_action, ping, stop)")
    serve.set_defaults(handler=cmd_serve)

    aggregate = sub.add_parser("aggregate", help="leaderboard tables and metrics from results")
    aggregate.add_argument("results", type=Path, help="directory holding cell directories")
    aggregate.add_argument("--out", type=Path, default=Path("reports"))
    aggregate.set_defaults(handler=cmd_aggregate)

    importer = sub.add_parser(
        "import-balrog", help="BALROG's published submissions (balrog-ai/experiments) as "
        "cells beside a run's: reference rows of the leaderboard")
    importer.add_argument("submissions", type=Path, nargs="+",
                          help="submission folders (submissions/LLM/<date>_<agent>_<model>)")
    importer.add_argument("--out", type=Path, required=True,
                          help="results directory to write the imported cells into")
    importer.set_defaults(handler=cmd_import_balrog)

    exporter = sub.add_parser(
        "export-balrog", help="a run's BALROG games as a submission folder for BALROG's "
        "leaderboard")
    exporter.add_argument("results", type=Path, help="directory holding cell directories")
    exporter.add_argument("--out", type=Path, required=True,
                          help="the submission folder to write (new or empty)")
    exporter.add_argument("--model", default=None, help="the row to export, where the "
                          "results hold several models")
    exporter.add_argument("--agent", default=None, help="the row's agent, likewise")
    exporter.set_defaults(handler=cmd_export_balrog)

    figures = sub.add_parser("figures", help="draw the figures from aggregated tables")
    figures.add_argument("tables", type=Path, nargs="?", default=Path("reports/tables"))
    figures.add_argument("--out", type=Path, default=Path("reports/figures"))
    figures.set_defaults(handler=cmd_figures)

    report = sub.add_parser("report", help="one HTML page of the tables and figures")
    report.add_argument("reports", type=Path, nargs="?", default=Path("reports"),
                        help="directory holding tables/ and figures/ (default: reports)")
    report.add_argument("--out", type=Path, default=None,
                        help="the page to write (default: REPORTS/index.html)")
    report.add_argument("--results", type=Path, default=None,
                        help="the cells' records: also write the episode viewer and each "
                        "cell's best and worst episode as animations (REPORTS/viewer)")
    report.set_defaults(handler=cmd_report)

    view = sub.add_parser("view", help="browse a results tree and watch its episodes")
    view.add_argument("results", type=Path, nargs="?", default=Path("results/runs"),
                      help="directory holding cell directories (default: results/runs)")
    view.add_argument("--port", type=int, default=8765, help="0: any free port (8765)")
    view.add_argument("--host", default="127.0.0.1",
                      help="address to listen on (127.0.0.1: this machine only)")
    view.set_defaults(handler=cmd_view)

    replay = sub.add_parser("replay", help="replay a recorded episode: check it against its "
                            "records, and write it as an animation")
    replay.add_argument("cell", type=Path, help="a cell's results directory")
    replay.add_argument("--episode", type=int, default=0, help="episode index (0)")
    replay.add_argument("--out", type=Path, default=None,
                        help="write an animation here (.gif or .webp)")
    replay.set_defaults(handler=cmd_replay)
    return parser


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def cmd_envs(args) -> int:
    from balrog_worker.envs import env_ids

    print("\n".join(env_ids()))
    return 0


def cmd_validate(args) -> int:
    from balrog_worker.config import load_params

    params = load_params(args.params)
    _check_dvc_can_read(Path(args.params))
    cells = params.cells()
    if args.cells:
        print("\n".join(cell.slug for cell in cells))
    print(f"{args.params}: valid, {len(cells)} cells", file=sys.stderr)
    return 0


def _check_dvc_can_read(path: Path) -> None:
    """dvc.yaml takes its paths from the params.yaml beside it (DVC's templating), which
    Snakemake would default: refuse a params.yaml that `dvc repro` could not render."""
    from balrog_worker import documents
    from balrog_worker.config import ConfigError

    if path.name != "params.yaml" or not (path.parent / "dvc.yaml").is_file():
        return
    data = documents.load_yaml(documents.read_text(path))  # load_params read it already
    paths = (data.get("paths") if isinstance(data, dict) else None) or {}
    missing = [f"paths.{key}" for key in ("results", "reports") if key not in paths]
    if missing:
        raise ConfigError(f"{path}: no {' or '.join(missing)}: dvc.yaml beside it reads them "
                          "from this file, so `dvc repro` cannot run (add paths: {results: "
                          "results/runs, reports: reports})")


def _params_for_run(path: Path | None):
    from balrog_worker.config import load_params, params_from_dict

    if path is None and Path(DEFAULT_PARAMS).is_file():
        path = Path(DEFAULT_PARAMS)
    if path is not None:
        return load_params(path, check_cells=False)  # the one cell run is checked below
    # No params file: the built-in baselines and default agents only.
    return params_from_dict(
        {"models": {"random": {"backend": "random"}}, "agents": {"naive": {}},
         "envs": {"babyai": {"tasks": ["goto"]}},
         "grid": {"models": ["random"], "agents": ["naive"], "envs": ["babyai"]}},
        source="built-in defaults",
    )


def cmd_run(args) -> int:
    from balrog_worker.checkpoint import Checkpoint
    from balrog_worker.clients import preflight
    from balrog_worker.evaluator import run_cell
    from balrog_worker.telemetry import RecordStream

    config = _config_from_file(args) if args.config else _config_from_flags(args)
    preflight(config.model, config.cache)
    try:
        checkpoint = Checkpoint(args.checkpoint, args.out) if args.checkpoint else None
    except ValueError as error:
        raise UsageError(str(error)) from None
    if checkpoint:
        checkpoint.restore()
    stream = RecordStream.take_stdout() if args.emit_jsonl else None
    completed = False
    try:
        report = run_cell(config, args.out, stream=stream, processes=args.processes,
                          on_commit=checkpoint and checkpoint.episode_committed)
        completed = not (report.failed or report.budget_reached)
    finally:
        if checkpoint:
            checkpoint.finish(completed)
    aggregate = report.summary["aggregate"]
    log.info("%s: ran %d episodes (%d already recorded), progression %.1f%% +- %.1f",
             config.run_id, report.ran, report.skipped, aggregate.get("progression") or 0.0,
             aggregate.get("progression_se") or 0.0)
    if report.budget_reached:
        print(f"balrog-worker: the budget of ${config.budget_usd} is spent; "
              "rerun with a larger --budget-usd to play the remaining episodes",
              file=sys.stderr)
        return EXIT_BUDGET_REACHED
    if report.failed:
        print(f"balrog-worker: {report.failed} of {report.ran} episodes failed (see "
              f"{args.out / 'episodes.jsonl'}); rerun the same command to retry them",
              file=sys.stderr)
        return EXIT_EPISODES_FAILED
    return 0


def _config_from_file(args):
    from dataclasses import replace

    from balrog_worker import documents
    from balrog_worker.config import cell_config_from_dict
    from balrog_worker.worker_config import is_mosaic_config, mosaic_cell_config

    given = [flag for flag in ("env", "task", "model", "params") if getattr(args, flag)]
    if given:
        raise UsageError(f"--config replaces --{', --'.join(given)}; give one or the other")
    try:
        data = documents.load_json(documents.read_text(args.config))
    except FileNotFoundError:
        raise UsageError(f"config file not found: {args.config}") from None
    except documents.DocumentError as error:
        raise UsageError(f"cannot read config file {args.config}: {error}") from None
    read = mosaic_cell_config if is_mosaic_config(data) else cell_config_from_dict
    config = read(data, source=str(args.config))
    overrides = {"episodes": args.episodes, "max_steps": args.max_steps, "seed": args.seed,
                 "parallel_episodes": args.parallel, "cache": args.cache,
                 "budget_usd": args.budget_usd}
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})


def _config_from_flags(args):
    from balrog_worker import envs
    from balrog_worker.cells import Cell

    if not args.env or not args.model:
        raise UsageError("give --env and --model (or --config FILE)")
    env, _, task = args.env.partition("/")
    env, task = envs.resolve_alias(env, task or args.task)
    if not task:
        raise UsageError("--task is required (or pass --env as env/task)")
    try:
        envs.check_env_task(env, task)
    except ValueError as error:
        raise UsageError(str(error)) from None
    level, mode = args.coordination_level, args.observation_mode
    if envs.FAMILIES[env].multi_agent:
        level, mode = level or 1, mode or "egocentric"
    elif level is not None or mode is not None or args.opponent is not None:
        raise UsageError(f"--coordination-level, --observation-mode and --opponent apply to "
                         f"multi-agent envs only, not {env!r}")
    params = _params_for_run(args.params)
    cell = Cell(model=args.model, agent=args.agent, env=env, task=task,
                coordination_level=level, observation_mode=mode)
    return params.cell_config(cell, episodes=args.episodes, max_steps=args.max_steps,
                              seed=args.seed, parallel_episodes=args.parallel,
                              opponent=args.opponent, cache=args.cache,
                              budget_usd=args.budget_usd)


def cmd_serve(args) -> int:
    from balrog_worker.serve import serve
    from balrog_worker.telemetry import RecordStream

    stream = RecordStream.take_stdout()  # stdout carries the answers only
    return serve(sys.stdin.buffer, stream.out)


def cmd_aggregate(args) -> int:
    from balrog_worker.analysis.leaderboard import write_leaderboard

    if not args.results.is_dir():
        raise UsageError(f"results directory not found: {args.results}")
    try:
        write_leaderboard(args.results, args.out)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    return 0


def cmd_import_balrog(args) -> int:
    from balrog_worker.balrog_import import SubmissionError, import_submissions

    try:
        report = import_submissions(args.submissions, args.out)
    except SubmissionError as error:
        raise UsageError(str(error)) from None
    print(f"imported {report.episodes} episodes ({report.steps} steps) into {report.cells} "
          f"cells, {len(report.reference_rows)} summary-only reference rows; "
          f"{len(report.skipped)} files skipped (said above)", file=sys.stderr)
    return 0


def cmd_export_balrog(args) -> int:
    from balrog_worker.balrog_export import ExportError, export_submission

    if not args.results.is_dir():
        raise UsageError(f"results directory not found: {args.results}")
    try:
        report = export_submission(args.results, args.out, model=args.model,
                                   agent=args.agent)
    except ExportError as error:
        raise UsageError(str(error)) from None
    for line in report.skipped:
        print(f"skipped {line}", file=sys.stderr)
    summary = report.summary
    print(f"wrote {report.episodes} episodes of {', '.join(report.envs)} to {args.out}: "
          f"overall {summary['average_progress']:.2f}% ± {summary['standard_error']:.2f}%; "
          f"fill in {args.out}/metadata.yaml and README.md, then open a pull request to "
          "balrog-ai/experiments", file=sys.stderr)
    return 0


def cmd_figures(args) -> int:
    from balrog_worker.analysis.figures import draw_figures

    if not args.tables.is_dir():
        raise UsageError(f"tables directory not found: {args.tables} (run aggregate first)")
    draw_figures(args.tables, args.out)
    return 0


def cmd_report(args) -> int:
    from balrog_worker.analysis.report import write_report

    if args.results is not None and not args.results.is_dir():
        raise UsageError(f"--results {args.results}: no such directory")
    try:
        page = write_report(args.reports, args.out or args.reports / "index.html",
                            results=args.results)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from None
    log.info("wrote %s", page)
    return 0


def cmd_view(args) -> int:
    from balrog_worker.viewer import serve

    if not args.results.is_dir():
        raise UsageError(f"{args.results}: no such directory (give the results directory "
                         "holding the cells, e.g. results/runs)")
    try:
        server = serve(args.results, args.port, args.host)
    except OSError as error:
        raise UsageError(f"cannot listen on {args.host}:{args.port}: {error.strerror}") from None
    host, port = server.server_address[:2]
    log.info("viewing %s at http://%s:%d/ (Ctrl-C to stop)", args.results, host, port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("stopped")
    finally:
        server.server_close()
    return 0


def cmd_replay(args) -> int:
    from balrog_worker.replay import Replay, ReplayError, write_animation

    try:
        replay = Replay(args.cell, args.episode)
        if args.out is not None:
            frames, mismatches = write_animation(replay, args.out)
            log.info("wrote %s: %d frames", args.out, frames)
        else:
            mismatches = replay.check()
    except ReplayError as error:
        raise UsageError(str(error)) from None
    for line in mismatches:
        print(f"mismatch: {line}", file=sys.stderr)
    if mismatches:
        print(f"balrog-worker: episode {args.episode} of {args.cell} does not replay as "
              f"recorded ({len(mismatches)} differences)", file=sys.stderr)
        return 1
    log.info("episode %d of %s replays exactly as recorded (%d steps)", args.episode,
             args.cell, replay.episode["num_steps"])
    return 0


if __name__ == "__main__":  # MOSAIC starts the worker as `python -m balrog_worker.cli`
    sys.exit(main(as_mosaic_module=True))
