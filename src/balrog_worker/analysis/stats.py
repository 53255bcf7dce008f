"""BALROG's statistics, as polars expressions shared by summaries and the leaderboard.

Per environment: mean progression and its standard error, population standard deviation
over sqrt(N), both in percent. Overall: the unweighted mean over environments, with
standard error sqrt(sum of SE^2) / number of environments (BALROG, arXiv:2411.13543).
"""

from __future__ import annotations

import polars as pl


def progression_stats(column: str = "progression") -> list[pl.Expr]:
    """Mean and standard error of ``column`` (a 0..1 score) in percent, and N."""
    score = pl.col(column) * 100
    return [
        score.mean().alias("progression"),
        (score.std(ddof=0) / pl.len().sqrt()).alias("progression_se"),
        pl.len().alias("episodes"),
    ]


def overall(per_env: pl.DataFrame, by: list[str]) -> pl.DataFrame:
    """Combine per-environment rows (``progression``, ``progression_se``) into one per group."""
    return per_env.group_by(by, maintain_order=True).agg(
        pl.col("progression").mean().alias("progression"),
        ((pl.col("progression_se") ** 2).sum().sqrt() / pl.len()).alias("progression_se"),
        pl.len().alias("envs"),
    )


def cell_aggregate(episodes: list[dict]) -> dict:
    """The aggregate stored in a cell's summary.json."""
    if not episodes:
        return {"episodes": 0}
    frame = pl.DataFrame(episodes, infer_schema_length=None)
    row = frame.select(
        *progression_stats(),
        (pl.col("success").cast(pl.Float64).mean() * 100).alias("success_rate"),
        pl.col("num_steps").mean().alias("mean_steps"),
        (pl.col("invalid_actions").sum() / pl.col("num_steps").sum().clip(1)).alias(
            "invalid_action_rate"
        ),
        pl.col("llm_calls").sum(),
        pl.col("input_tokens").sum(),
        pl.col("output_tokens").sum(),
        pl.col("cost_usd").sum(),
        pl.col("duration_s").sum(),
    ).row(0, named=True)
    return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
