"""Figures drawn from the aggregated tables alone (no model call, no raw logs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node

import matplotlib.pyplot as plt
import polars as pl
import seaborn as sns

PALETTE = "colorblind"


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def leaderboard_figure(per_env: pl.DataFrame, out: Path) -> list[Path]:
    """Mean progression per environment for each model/agent, with SE bars and n."""
    frame = per_env.with_columns(
        (pl.col("model") + " / " + pl.col("agent")).alias("entry")
    ).sort(["env", "entry"])
    entries = frame["entry"].unique(maintain_order=True).to_list()
    env_names = frame["env"].unique(maintain_order=True).to_list()
    colours = dict(zip(entries, sns.color_palette(PALETTE, len(entries)), strict=True))
    width = 0.8 / len(entries)
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(env_names) * max(1, len(entries) / 2), 3.6))
    for k, entry in enumerate(entries):
        rows = frame.filter(pl.col("entry") == entry)
        xs = [env_names.index(e) + (k - (len(entries) - 1) / 2) * width for e in rows["env"]]
        ax.bar(xs, rows["progression"], width, yerr=rows["progression_se"], capsize=3,
               color=colours[entry], label=entry)
        for x, y, n in zip(xs, rows["progression"], rows["episodes"], strict=True):
            ax.annotate(f"n={n}", (x, y), xytext=(0, 3), textcoords="offset points",
                        ha="center", fontsize=7)
    ax.set_xticks(range(len(env_names)), env_names)
    ax.set_ylabel("Progression (%, mean ± SE)")
    ax.set_xlabel("Environment")
    ax.set_ylim(0, 105)
    ax.set_title("BALROG progression by environment")
    ax.legend(title="model / agent", fontsize=8, frameon=False, loc="upper left",
              bbox_to_anchor=(1.0, 1.0))
    sns.despine(fig)
    return _save(fig, out, "leaderboard")


def draw_figures(tables: str | Path, out: str | Path) -> list[Path]:
    tables, out = Path(tables), Path(out)
    per_env = pl.read_csv(tables / "per_env.csv")
    return leaderboard_figure(per_env, out)
