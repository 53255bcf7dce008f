"""BALROG's leaderboard: progression per model x agent, per environment and overall
(BALROG's six environments only), and a table of the other environments."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import polars as pl

from balrog_worker.analysis.load import load_episodes, scan_steps
from balrog_worker.analysis.rq import write_rq_tables
from balrog_worker.analysis.stats import overall, progression_stats
from balrog_worker.records import FOCAL
from balrog_worker.vocab import BALROG_ENVS, BALROG_WORDING

log = logging.getLogger(__name__)

GROUP = ["model", "agent"]


def per_env(episodes: pl.DataFrame) -> pl.DataFrame:
    """One row per model x agent x env: mean progression and SE (%), usage."""
    return (
        episodes.group_by([*GROUP, "env"], maintain_order=True)
        .agg(
            *progression_stats(),
            (pl.col("invalid_actions").sum() / pl.col("num_steps").sum().clip(1) * 100)
            .alias("invalid_action_pct"),
            pl.col("input_tokens").sum(),
            pl.col("output_tokens").sum(),
            pl.col("cost_usd").sum(),
        )
        .sort([*GROUP, "env"])
    )


def per_task(episodes: pl.DataFrame) -> pl.DataFrame:
    return (
        episodes.group_by([*GROUP, "env", "task"])
        .agg(*progression_stats(),
             (pl.col("success").cast(pl.Float64).mean() * 100).alias("success_pct"),
             pl.col("num_steps").mean().alias("mean_steps"))
        .sort([*GROUP, "env", "task"])
    )


def usage_by_env(steps: pl.LazyFrame) -> pl.DataFrame:
    """One row per answering model x agent x env x side from the step records: model
    calls, invalid answers, latency, tokens per call and cost. ``model`` is the model
    that answered (in a model-vs-model match the other team's model has rows of its own,
    side "opponent"; records older than the field count as the cell's model, focal).
    Streams the steps: they are the bulk of a grid's data."""
    latency = pl.col("latency_s")
    return (
        steps.with_columns(pl.coalesce("answered_by", "model").alias("model"),
                           pl.col("side").fill_null(FOCAL))
        .group_by([*GROUP, "env", "side"])
        .agg(
            pl.len().alias("calls"),
            ((~pl.col("valid")).cast(pl.Float64).mean() * 100).alias("invalid_pct"),
            latency.mean().alias("latency_mean_s"),
            latency.median().alias("latency_p50_s"),
            latency.quantile(0.95, interpolation="linear").alias("latency_p95_s"),
            pl.col("input_tokens").mean().alias("input_tokens_per_call"),
            pl.col("output_tokens").mean().alias("output_tokens_per_call"),
            pl.col("retries").sum(),
            pl.col("cost_usd").sum(),
        )
        .sort([*GROUP, "env", "side"])
        .collect(engine="streaming")
    )




def _wide(envs: pl.DataFrame) -> pl.DataFrame:
    """Per-environment rows (BALROG's six) as the leaderboard's wide rows: per-env
    progression with SE, the row's coverage (how many of the six it played), its totals,
    and BALROG's overall score, which exists only for rows that played all six."""
    sums = [pl.col(c).sum() for c in ("episodes", "input_tokens", "output_tokens", "cost_usd")
            if c in envs.columns]
    totals = overall(envs, GROUP).join(envs.group_by(GROUP).agg(*sums), on=GROUP)
    complete = pl.col("envs") == len(BALROG_ENVS)
    totals = totals.with_columns(
        pl.when(complete).then(pl.col("progression")).alias("progression"),
        pl.when(complete).then(pl.col("progression_se")).alias("progression_se"),
        pl.format("{}/{}", pl.col("envs"), pl.lit(len(BALROG_ENVS))).alias("coverage"),
    )
    wide = envs.pivot(on="env", index=GROUP, values=["progression", "progression_se"])
    return totals.join(wide, on=GROUP)


def _ranked(board: pl.DataFrame) -> pl.DataFrame:
    """Best first; rows without an overall after, by coverage."""
    return board.sort(["progression", "envs", *GROUP], descending=[True, True, False, False],
                      nulls_last=True)


def leaderboard(episodes: pl.DataFrame) -> pl.DataFrame:
    """Wide table of BALROG's environments (``_wide``), with whose words each row's
    prompts were in and, for rows imported from BALROG's leaderboard, their submission."""
    balrog = episodes.filter(pl.col("env").is_in(BALROG_ENVS))
    return _ranked(_wide(per_env(balrog)).join(_wording(balrog), on=GROUP, how="left")
                   .join(_published(balrog), on=GROUP, how="left"))


def _published(episodes: pl.DataFrame) -> pl.DataFrame:
    """Per row, the BALROG submission its episodes were imported from (null for this
    project's own runs) and what is known of the protocol they played."""
    def joined(name: str) -> pl.Expr:
        column = pl.col(name) if name in episodes.columns else pl.lit(None, pl.String)
        return column.drop_nulls().unique().sort().str.join("; ")

    return (episodes.group_by(GROUP).agg(joined("published"), joined("protocol_notes"))
            .with_columns(pl.when(pl.col(c) != "").then(pl.col(c)).alias(c)
                          for c in ("published", "protocol_notes")))


def versus_published(board: pl.DataFrame) -> pl.DataFrame | None:
    """Where each of the run's own rows stands among the published ones, per BALROG
    environment and overall: its progression ± SE, its rank among the published rows with
    a figure there (1: above them all), and the published rows just above and below it
    with their published SE. None when the board has no published row or no own row."""
    if "published" not in board.columns:
        return None
    published = board.filter(pl.col("published").is_not_null())
    own = board.filter(pl.col("published").is_null())
    if published.is_empty() or own.is_empty():
        return None
    rows = []
    for mine in own.iter_rows(named=True):
        for env in (*BALROG_ENVS, None):
            mean_key = f"progression_{env}" if env else "progression"
            se_key = f"progression_se_{env}" if env else "progression_se"
            if mine.get(mean_key) is None:
                continue
            others = sorted(((r[mean_key], r[se_key], f"{r['model']} / {r['agent']}")
                             for r in published.iter_rows(named=True)
                             if r.get(mean_key) is not None), reverse=True)
            if not others:
                continue
            above = [o for o in others if o[0] > mine[mean_key]]
            below = [o for o in others if o[0] <= mine[mean_key]]

            def describe(entry) -> str | None:
                return None if entry is None else f"{entry[2]}: {entry[0]:.1f} ± {entry[1]:.1f}"

            rows.append({"model": mine["model"], "agent": mine["agent"],
                         "env": env or "overall", "progression": mine[mean_key],
                         "progression_se": mine[se_key], "rank": len(above) + 1,
                         "published_rows": len(others),
                         "published_above": describe(above[-1] if above else None),
                         "published_below": describe(below[0] if below else None)})
    return pl.DataFrame(rows) if rows else None


def reference_per_env(results: str | Path) -> pl.DataFrame | None:
    """Per-environment rows of published submissions that have no episodes, only their
    summary (``import-balrog`` writes them to ``published/`` under the results), with
    their published figures; None where there are none."""
    from balrog_worker import documents
    from balrog_worker.balrog_import import PUBLISHED

    rows = []
    for path in sorted(Path(results).glob(f"{PUBLISHED}/*.json")):
        try:
            data = documents.load_json(documents.read_text(path, limit=1 << 20))
            keys = {"model": str(data["model"]), "agent": str(data["agent"]),
                    "published": str(data["submission"])}
            found = []
            for env in BALROG_ENVS:
                figures = data["environments"].get(env)
                if figures:
                    notes = [note for note in figures.get("protocol_notes") or []
                             if isinstance(note, str)]
                    episodes = figures.get("episodes")
                    found.append({**keys, "env": env,
                                  "progression": float(figures["progression"]),
                                  "progression_se": float(figures["progression_se"]),
                                  "episodes": episodes if isinstance(episodes, int) else None,
                                  "protocol_notes": "; ".join(notes) or None})
        except (documents.DocumentError, KeyError, TypeError, ValueError,
                AttributeError) as error:
            log.warning("%s: not a reference row (%s); left out", path, error)
            continue
        rows += found
    return pl.DataFrame(rows, infer_schema_length=None) if rows else None


def reference_board(envs: pl.DataFrame) -> pl.DataFrame:
    """The leaderboard's rows of summary-only submissions (``reference_per_env``): their
    overall follows BALROG's rule from their published figures."""
    marks = envs.group_by(GROUP).agg(
        pl.col("published").first(),
        pl.col("protocol_notes").drop_nulls().unique().sort().str.join("; "),
    ).with_columns(pl.when(pl.col("protocol_notes") != "").then(pl.col("protocol_notes"))
                   .alias("protocol_notes"),
                   pl.lit(True).alias("summary_only"), pl.lit(True).alias("balrog_wording"),
                   pl.lit("balrog@published").alias("prompt_wording"))
    return _wide(envs).join(marks, on=GROUP)


def _wording(episodes: pl.DataFrame) -> pl.DataFrame:
    """Per row, whose words its episodes' prompts were in ("unknown" for records older
    than the field), and whether they are all BALROG's own (``balrog@<tree digest>``,
    one tree)."""
    column = (pl.col("prompt_wording") if "prompt_wording" in episodes.columns
              else pl.lit(None, pl.String))
    return (episodes.group_by(GROUP)
            .agg(column.fill_null("unknown").unique().sort().str.join(",")
                 .alias("prompt_wording"))
            .with_columns((pl.col("prompt_wording").str.starts_with(f"{BALROG_WORDING}@")
                           & ~pl.col("prompt_wording").str.contains(",", literal=True))
                          .alias("balrog_wording")))


def other_envs(episodes: pl.DataFrame) -> pl.DataFrame:
    """Per model x agent x env rows of the environments outside BALROG's six (MiniGrid,
    MultiGrid): they have tables of their own and never enter BALROG's overall."""
    return per_env(episodes.filter(~pl.col("env").is_in(BALROG_ENVS)))


def _coverage_note(table: pl.DataFrame) -> str:
    from balrog_worker import envs

    missing = [e for e in BALROG_ENVS if e not in envs.FAMILIES]
    note = ("BALROG's overall score is the unweighted mean over its six environments "
            f"({', '.join(BALROG_ENVS)}); a row gets one only if it played all six, and "
            "shows its coverage otherwise. Rows marked * asked the model in other words "
            "than BALROG's (the same information; see docs/protocol.md): wording changes "
            "scores, so they are not BALROG's leaderboard numbers.")
    if "published" in table.columns and table["published"].is_not_null().any():
        note += (" Rows marked † are published on BALROG's leaderboard "
                 "(balrog-ai/experiments), imported with `import-balrog`; leaderboard.csv "
                 "says which submission and what is known of the protocol it played "
                 "(protocol_notes).")
    if missing:
        note += f" Not available in this version: {', '.join(missing)}, so no row can have one."
    elif table.height and table["progression"].is_null().all():
        note += " No row played all six."
    return note


def _markdown(table: pl.DataFrame, env_names: list[str]) -> str:
    head = ["model", "agent", "BALROG overall", *env_names, "coverage", "episodes"]
    lines = [_coverage_note(table), "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.iter_rows(named=True):
        overall_cell = ("–" if row["progression"] is None
                        else f"{row['progression']:.1f} ± {row['progression_se']:.1f}")
        marked = ("" if row.get("balrog_wording") else "*") + (
            " †" if row.get("published") else "")
        cells = [row["model"] + marked, row["agent"], overall_cell]
        for env in env_names:
            mean, se = row.get(f"progression_{env}"), row.get(f"progression_se_{env}")
            cells.append("–" if mean is None else f"{mean:.1f} ± {se:.1f}")
        cells += [row["coverage"], "–" if row.get("episodes") is None else str(row["episodes"])]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _other_markdown(table: pl.DataFrame) -> str:
    lines = ["Environments outside BALROG's six (not part of its overall score).", "",
             "| model | agent | env | progression | episodes |", "|---|---|---|---|---|"]
    for row in table.iter_rows(named=True):
        lines.append(f"| {row['model']} | {row['agent']} | {row['env']} | "
                     f"{row['progression']:.1f} ± {row['progression_se']:.1f} | "
                     f"{row['episodes']} |")
    return "\n".join(lines) + "\n"


def _latex(table: pl.DataFrame, env_names: list[str]) -> str:
    def cell(mean, se) -> str:
        return "--" if mean is None else f"{mean:.1f} $\\pm$ {se:.1f}"

    def escape(text: str) -> str:
        return text.replace("_", "\\_").replace("&", "\\&").replace("%", "\\%")

    columns = "ll" + "r" * (len(env_names) + 2)
    head = " & ".join(["Model", "Agent", "BALROG overall", *map(escape, env_names), "Coverage"])
    rows = [" & ".join([escape(r["model"]), escape(r["agent"]),
                        cell(r["progression"], r["progression_se"]),
                        *(cell(r.get(f"progression_{e}"), r.get(f"progression_se_{e}"))
                          for e in env_names), r["coverage"]]) + " \\\\"
            for r in table.iter_rows(named=True)]
    return "\n".join([f"\\begin{{tabular}}{{{columns}}}", "\\toprule", head + " \\\\",
                      "\\midrule", *rows, "\\bottomrule", "\\end{tabular}", ""])


def write_leaderboard(results: str | Path, out: str | Path) -> dict:
    """Write tables/leaderboard.{csv,md,tex} (BALROG's six environments),
    tables/other_envs.{csv,md} (MiniGrid, MultiGrid), tables/per_env.csv, per_task.csv,
    tables/usage.csv (from the step records), the RQ1-RQ3 tables when there are
    multi-agent episodes, and metrics.json under ``out``; return the metrics."""
    out = Path(out)
    tables = out / "tables"
    tables.mkdir(parents=True, exist_ok=True)
    episodes = load_episodes(results)
    envs = per_env(episodes).join(_published(episodes).select(*GROUP, "published"),
                                  on=GROUP, how="left")
    board = leaderboard(episodes)
    references = reference_per_env(results)
    if references is not None:
        board = _ranked(pl.concat([board, reference_board(references)],
                                  how="diagonal_relaxed"))
        envs = pl.concat([envs, references.drop("protocol_notes")], how="diagonal_relaxed")
    env_names = [e for e in BALROG_ENVS if e in set(envs["env"].to_list())]
    board.write_csv(tables / "leaderboard.csv")
    (tables / "vs_published.csv").unlink(missing_ok=True)  # from an earlier aggregate
    versus = versus_published(board)
    if versus is not None:
        versus.write_csv(tables / "vs_published.csv")
    (tables / "leaderboard.md").write_text(_markdown(board, env_names))
    (tables / "leaderboard.tex").write_text(_latex(board, env_names))
    others = other_envs(episodes)
    others.write_csv(tables / "other_envs.csv")
    (tables / "other_envs.md").write_text(_other_markdown(others))
    write_rq_tables(episodes, tables)
    envs.write_csv(tables / "per_env.csv")
    per_task(episodes).write_csv(tables / "per_task.csv")
    try:
        usage = usage_by_env(scan_steps(results, episodes))
    except pl.exceptions.ComputeError as error:  # a damaged line somewhere in the steps
        log.warning("steps: fast scan failed (%s); reading line by line",
                    str(error).splitlines()[0])
        usage = usage_by_env(scan_steps(results, episodes, tolerant=True))
    usage.write_csv(tables / "usage.csv")
    metrics = {"leaderboard": {}, "other_envs": {}}
    for row in board.iter_rows(named=True):
        entry = {"overall": None if row["progression"] is None else round(row["progression"], 3),
                 "published": row.get("published"),
                 "overall_se": (None if row["progression_se"] is None
                                else round(row["progression_se"], 3)),
                 "coverage": row["coverage"]}
        for env in env_names:
            if row.get(f"progression_{env}") is not None:
                entry[env] = round(row[f"progression_{env}"], 3)
                entry[f"{env}_se"] = round(row[f"progression_se_{env}"], 3)
        metrics["leaderboard"].setdefault(row["model"], {})[row["agent"]] = entry
    for row in others.iter_rows(named=True):
        metrics["other_envs"].setdefault(row["model"], {}).setdefault(row["agent"], {})[
            row["env"]] = {"progression": round(row["progression"], 3),
                           "progression_se": round(row["progression_se"], 3)}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    log.info("aggregated %d episodes of %d model x agent rows into %s",
             episodes.height, board.height, out)
    return metrics
