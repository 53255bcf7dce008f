"""Statistics for the multi-agent research questions.

RQ1: do coordination levels change multi-agent performance?
RQ2: does the ``visible_teammates`` observation mode beat ``egocentric``?

``performance_by_group`` gives per-group means with 95% bootstrap confidence intervals;
``paired_comparisons`` compares the levels of one factor on episodes paired by seed (the
same seed is the same game start) with two-sided Wilcoxon signed-rank tests, a
matched-pairs rank-biserial effect size and Holm-adjusted p-values over the whole table.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
from scipy import stats

from balrog_worker.vocab import MODEL_OPPONENT_PREFIX

MULTIAGENT_TASKS = ("soccer", "collect")


def multiagent(episodes: pl.DataFrame) -> pl.DataFrame:
    """The MultiGrid Soccer/Collect rows of an episode frame."""
    return episodes.filter(
        (pl.col("env") == "multigrid") & pl.col("task").is_in(list(MULTIAGENT_TASKS))
    )


def bootstrap_ci(
    values: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    random_state: int = 0,
    method: str = "percentile",
) -> tuple[float, float, float]:
    """Mean of ``values`` and its bootstrap confidence interval ``(mean, low, high)``.

    Uses ``scipy.stats.bootstrap`` with a generator seeded by ``random_state``, so equal
    inputs give equal intervals. A sample of one value, or with zero variance, has the
    degenerate interval ``(mean, mean)``. An empty sample gives NaNs.
    """
    x = np.asarray(values, dtype=float)
    x = x[~np.isnan(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2 or np.ptp(x) == 0:
        return mean, mean, mean
    result = stats.bootstrap(
        (x,),
        np.mean,
        n_resamples=n_resamples,
        confidence_level=confidence,
        method=method,
        vectorized=True,
        rng=np.random.default_rng(random_state),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):
        return mean, mean, mean
    return mean, low, high


def _soccer_columns(frame: pl.DataFrame) -> dict[str, pl.Expr]:
    """Soccer-only per-episode metrics available in ``frame``: win indicator, goal difference."""
    columns: dict[str, pl.Expr] = {}
    if "outcome" in frame.columns:
        columns["win_rate"] = (
            pl.when(pl.col("outcome").is_null())
            .then(None)
            .otherwise((pl.col("outcome") == "win").cast(pl.Float64))
        )
    if {"goals_for", "goals_against"} <= set(frame.columns):
        columns["goal_diff"] = (pl.col("goals_for") - pl.col("goals_against")).cast(pl.Float64)
    return columns


def performance_by_group(
    episodes: pl.DataFrame,
    by: Sequence[str] = ("task", "model", "agent", "coordination_level"),
    metric: str = "progression",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    random_state: int = 0,
    method: str = "percentile",
) -> pl.DataFrame:
    """Per group of ``by``: n, and the mean of ``metric`` with a bootstrap CI.

    The bootstrap resamples games, not episodes: where the frame has a ``seed`` column,
    a group's episodes of one seed (the same game start, e.g. in both observation modes
    when RQ1 pools them) are averaged first, so paired episodes are not counted as
    independent; ``games`` is how many seeds the group has.

    Columns: the ``by`` columns, ``n`` (episodes), ``games``, ``{metric}``, ``{metric}_ci_low``,
    ``{metric}_ci_high``; where the frame has soccer columns also ``win_rate`` (share of
    outcomes that are "win") and ``goal_diff`` (goals_for - goals_against), each with its
    CI; these are null for groups without soccer episodes. See ``bootstrap_ci``.
    """
    by = list(by)
    extra = _soccer_columns(episodes)
    frame = episodes.with_columns(
        pl.col(metric).cast(pl.Float64).alias("__metric"),
        *(expr.alias(f"__{name}") for name, expr in extra.items()),
    )
    names = [metric, *extra]
    sources = ["__metric", *(f"__{name}" for name in extra)]
    clustered = "seed" in frame.columns
    rows = []
    for key, group in frame.group_by(by, maintain_order=True):
        row = dict(zip(by, key, strict=True))
        row["n"] = group.height
        row["games"] = group["seed"].n_unique() if clustered else group.height
        for name, source in zip(names, sources, strict=True):
            if clustered:  # one value per game: the mean of its episodes
                per_game = (group.filter(pl.col(source).is_not_null())
                            .group_by("seed").agg(pl.col(source).mean()).sort("seed"))
                values = per_game[source].to_numpy()
            else:
                values = group[source].drop_nulls().to_numpy()
            if values.size == 0:
                mean = low = high = None
            else:
                mean, low, high = bootstrap_ci(
                    values, confidence, n_resamples, random_state, method
                )
            row[name], row[f"{name}_ci_low"], row[f"{name}_ci_high"] = mean, low, high
        rows.append(row)
    schema = {column: frame.schema[column] for column in by}
    schema["n"] = pl.Int64
    schema["games"] = pl.Int64
    for name in names:
        for suffix in ("", "_ci_low", "_ci_high"):
            schema[f"{name}{suffix}"] = pl.Float64
    table = pl.DataFrame(rows, schema=schema)
    return table.sort(by, maintain_order=True) if by else table


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values, in the input order.

    Sorting p ascending, ``p_adj_(i) = max_{j<=i} min(1, (m - j + 1) * p_(j))``.
    """
    p = list(pvalues)
    m = len(p)
    adjusted = [0.0] * m
    running = 0.0
    for rank, index in enumerate(sorted(range(m), key=lambda i: p[i])):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def rank_biserial(differences: Sequence[float] | np.ndarray) -> float:
    """Matched-pairs rank-biserial correlation ``(W+ - W-) / (W+ + W-)``.

    Ranks are average ranks of |d| over the non-zero differences (zeros dropped, as in
    Wilcoxon's method); 0.0 when every difference is zero.
    """
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    if d.size == 0:
        return 0.0
    ranks = stats.rankdata(np.abs(d))
    plus, minus = ranks[d > 0].sum(), ranks[d < 0].sum()
    return float((plus - minus) / (plus + minus))


def wilcoxon_p(differences: Sequence[float] | np.ndarray) -> tuple[float, float]:
    """Two-sided Wilcoxon signed-rank test on paired differences: ``(statistic, p)``.

    Zero differences are dropped; if all are zero the test is undefined and p = 1.0.
    """
    d = np.asarray(differences, dtype=float)
    if d.size == 0 or np.all(d == 0):
        return math.nan, 1.0
    result = stats.wilcoxon(d, zero_method="wilcox", alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


def paired_comparisons(
    episodes: pl.DataFrame,
    factor: str,
    levels: Sequence | None = None,
    within: Sequence[str] = ("task", "model", "agent"),
    metric: str = "progression",
    alpha: float = 0.05,
) -> pl.DataFrame:
    """Seed-paired comparisons of every pair of levels of ``factor`` within each group.

    ``factor`` is e.g. "coordination_level" (RQ1) or "observation_mode" (RQ2; then the
    comparison is also made within each coordination level, i.e. "coordination_level" is
    added to ``within``). Per group, level and seed the metric is averaged over everything
    else (e.g. over observation modes when comparing levels), so each seed gives one value
    per level; seeds present at both levels a < b (order of ``levels``, default sorted)
    form the pairs and the differences are b - a.

    Columns: ``within``, factor, level_a, level_b, n_pairs, mean_a, mean_b, mean_diff,
    rank_biserial, statistic (Wilcoxon W), p_value, p_holm (Holm over every row of the
    table) and significant (p_holm < alpha). Pairs of levels sharing no seed are left out.
    """
    within = [column for column in within if column != factor]
    if factor == "observation_mode" and "coordination_level" not in within:
        within.append("coordination_level")
    per_seed = (
        episodes.filter(pl.col(metric).is_not_null())
        .group_by([*within, factor, "seed"])
        .agg(pl.col(metric).cast(pl.Float64).mean().alias("value"))
    )
    rows = []
    for key, group in per_seed.group_by(within, maintain_order=True):
        present = set(group[factor].to_list())
        order = [level for level in levels if level in present] if levels else sorted(present)
        for a, b in itertools.combinations(order, 2):
            pairs = (
                group.filter(pl.col(factor) == a)
                .select("seed", pl.col("value").alias("a"))
                .join(
                    group.filter(pl.col(factor) == b).select("seed", pl.col("value").alias("b")),
                    on="seed",
                )
            )
            if pairs.height == 0:
                continue
            x, y = pairs["a"].to_numpy(), pairs["b"].to_numpy()
            diff = y - x
            statistic, p = wilcoxon_p(diff)
            rows.append({
                **dict(zip(within, key, strict=True)),
                "factor": factor,
                "level_a": str(a),
                "level_b": str(b),
                "n_pairs": pairs.height,
                "mean_a": float(x.mean()),
                "mean_b": float(y.mean()),
                "mean_diff": float(diff.mean()),
                "rank_biserial": rank_biserial(diff),
                "statistic": statistic,
                "p_value": p,
            })
    schema = {column: per_seed.schema[column] for column in within}
    schema.update({
        "factor": pl.String, "level_a": pl.String, "level_b": pl.String, "n_pairs": pl.Int64,
        "mean_a": pl.Float64, "mean_b": pl.Float64, "mean_diff": pl.Float64,
        "rank_biserial": pl.Float64, "statistic": pl.Float64, "p_value": pl.Float64,
    })
    table = pl.DataFrame(rows, schema=schema)
    table = table.with_columns(
        pl.Series("p_holm", holm(table["p_value"].to_list()), dtype=pl.Float64)
    ).with_columns((pl.col("p_holm") < alpha).alias("significant"))
    return table.sort(within, maintain_order=True) if within else table


# RQ3: behaviour, not only reward. Means per group of the coordination metrics each
# multi-agent episode records (missing for the other game: left null).
BEHAVIOUR = ("possession_share", "passes", "steals", "both_chasing_rate",
             "mean_teammate_distance", "role_adherence", "balls_collected", "contested_rate")


def behaviour_by_group(episodes: pl.DataFrame,
                       by: Sequence[str] = ("task", "model", "agent", "coordination_level"),
                       ) -> pl.DataFrame:
    """Mean of every coordination metric present, and n, per group (RQ3)."""
    present = [m for m in BEHAVIOUR if m in episodes.columns]
    return (episodes.group_by(list(by))
            .agg(pl.len().alias("n"), *(pl.col(m).cast(pl.Float64).mean().alias(m)
                                        for m in present))
            .sort(list(by)))


def model_matches(frame: pl.DataFrame) -> pl.DataFrame:
    """Soccer between two models: per (model, opponent, agent, level, mode), n, the
    shares of wins, draws and losses of the cell's model, and mean goals each way."""
    if "opponent" not in frame.columns or "outcome" not in frame.columns:
        return pl.DataFrame()
    matches = frame.filter(pl.col("opponent").str.starts_with(MODEL_OPPONENT_PREFIX))
    keys = ["model", "opponent", "agent", "coordination_level", "observation_mode"]
    return (matches.group_by(keys)
            .agg(pl.len().alias("n"),
                 *((pl.col("outcome") == result).mean().alias(f"{result}_rate")
                   for result in ("win", "draw", "loss")),
                 pl.col("goals_for").mean(), pl.col("goals_against").mean())
            .sort(keys))


def write_rq_tables(episodes: pl.DataFrame, tables: Path) -> list[Path]:
    """RQ1-RQ3 tables under ``tables`` from every multi-agent episode (none: nothing)."""
    frame = multiagent(episodes)
    if frame.is_empty():
        return []
    # Soccer against the scripted team and against another model are different
    # experiments: every table keeps them apart (Collect has no opponent: null).
    cell = ["task", "opponent", "model", "agent"] if "opponent" in frame.columns else [
        "task", "model", "agent"]
    outputs = {
        "rq1_performance.csv": performance_by_group(frame, by=(*cell, "coordination_level")),
        "rq1_paired.csv": paired_comparisons(frame, "coordination_level", within=cell),
        "rq2_performance.csv": performance_by_group(
            frame, by=(*cell, "coordination_level", "observation_mode")),
        "rq2_paired.csv": paired_comparisons(frame, "observation_mode", within=cell),
        "rq3_behaviour.csv": behaviour_by_group(frame, by=(*cell, "coordination_level")),
    }
    matches = model_matches(frame)
    (tables / "model_matches.csv").unlink(missing_ok=True)  # from an older grid
    if not matches.is_empty():  # a table of its own, only where two models played
        outputs["model_matches.csv"] = matches
    paths = []
    for name, table in outputs.items():
        path = tables / name
        table.write_csv(path)
        paths.append(path)
    return paths
