"""Figures drawn from the aggregated tables alone (no model call, no raw logs)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed on a cluster node

import matplotlib.pyplot as plt
import polars as pl
import seaborn as sns

from balrog_worker.vocab import BALROG_ENVS

# Names come from records (a model id is free text): "$" is a dollar, never mathtext.
matplotlib.rcParams["text.parse_math"] = False

PALETTE = "colorblind"


def _save(fig, out: Path, name: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{name}.{ext}" for ext in ("png", "pdf")]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def _grouped_bars(ax, frame: pl.DataFrame, x: str, categories: list[str], colours: dict,
                  n_prefix: str, fontsize: int, hatched: frozenset = frozenset()) -> None:
    """Bars of mean progression (SE whiskers) per ``x`` category, one bar of each group
    ("entry" column, coloured by ``colours``) side by side, n written above each bar;
    entries in ``hatched`` (published rows) are hatched."""
    width = 0.8 / len(colours)
    for k, (entry, colour) in enumerate(colours.items()):
        rows = frame.filter(pl.col("entry") == entry)
        xs = [categories.index(c) + (k - (len(colours) - 1) / 2) * width for c in rows[x]]
        ax.bar(xs, rows["progression"], width, yerr=rows["progression_se"], capsize=2,
               color=colour, label=entry, hatch="///" if entry in hatched else None,
               edgecolor="white" if entry in hatched else None)
        for xi, yi, n in zip(xs, rows["progression"], rows["episodes"], strict=True):
            label = "" if n is None else f"{n_prefix}{n}"
            ax.annotate(label, (xi, yi), xytext=(0, 2), textcoords="offset points",
                        ha="center", fontsize=fontsize)


def leaderboard_figure(per_env: pl.DataFrame, out: Path, name: str = "leaderboard",
                       title: str = "BALROG progression by environment") -> list[Path]:
    """Mean progression per environment for each model/agent, with SE bars and n; rows
    published on BALROG's leaderboard (imported) are hatched and marked † in the legend."""
    published = (pl.col("published").is_not_null() if "published" in per_env.columns
                 else pl.lit(False))
    frame = per_env.with_columns(
        (pl.col("model") + " / " + pl.col("agent")
         + pl.when(published).then(pl.lit(" †")).otherwise(pl.lit(""))).alias("entry"),
        published.alias("is_published"),
    ).sort(["env", "entry"])
    hatched = frozenset(frame.filter(pl.col("is_published"))["entry"].to_list())
    entries = frame["entry"].unique(maintain_order=True).to_list()
    env_names = frame["env"].unique(maintain_order=True).to_list()
    colours = dict(zip(entries, sns.color_palette(PALETTE, len(entries)), strict=True))
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(env_names) * max(1, len(entries) / 2), 3.6))
    _grouped_bars(ax, frame, "env", env_names, colours, n_prefix="n=", fontsize=7,
                  hatched=hatched)
    ax.set_xticks(range(len(env_names)), env_names)
    ax.set_ylabel("Progression (%, mean ± SE)")
    ax.set_xlabel("Environment")
    ax.set_ylim(0, 105)
    ax.set_title(title)
    ax.legend(title="model / agent" + ("  († published on BALROG's leaderboard)"
                                       if hatched else ""),
              fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    sns.despine(fig)
    return _save(fig, out, name)


def _panels(frame: pl.DataFrame, panel: str, width: float = 4.2):
    names = frame[panel].unique(maintain_order=True).to_list()
    fig, axes = plt.subplots(1, len(names), figsize=(width * len(names), 3.4), squeeze=False,
                             sharey=True)
    return fig, list(zip(names, axes[0], strict=True))


def _with_series(frame: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """``frame`` with a "series" label of ``columns`` (and of the opponent, where Soccer was
    played against more than the scripted team), so that each line of a figure is one
    (model, agent, ...) and has one point per coordination level."""
    if "opponent" in frame.columns and frame["opponent"].drop_nulls().n_unique() > 1:
        columns = [*columns, "opponent"]
    label = pl.concat_str([pl.col(c).cast(pl.Utf8) for c in columns], separator=" / ",
                          ignore_nulls=True)
    return frame.with_columns(label.alias("series"))


def _levels_plot(frame: pl.DataFrame, out: Path, name: str, series: list[str], title: str):
    """Mean progression (95% bootstrap CI over games) by coordination level, a panel per
    game and a line per ``series`` combination, n (games) per point."""
    frame = _with_series(frame, series).sort(["task", "series", "coordination_level"])
    labels = frame["series"].unique(maintain_order=True).to_list()
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels)), strict=True))
    fig, panels = _panels(frame, "task")
    for task, ax in panels:
        for label in labels:
            rows = frame.filter((pl.col("task") == task) & (pl.col("series") == label))
            if rows.is_empty():
                continue
            x, y = rows["coordination_level"].to_list(), (rows["progression"] * 100).to_list()
            low = [m - lo for m, lo in zip(y, (rows["progression_ci_low"] * 100), strict=True)]
            high = [hi - m for m, hi in zip(y, (rows["progression_ci_high"] * 100), strict=True)]
            ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, color=colours[label],
                        label=label)
            counts = rows["games"] if "games" in rows.columns else rows["n"]
            for xi, yi, n in zip(x, y, counts, strict=True):
                ax.annotate(f"n={n}", (xi, yi), xytext=(4, 4), textcoords="offset points",
                            fontsize=7)
        ax.set_title(task)
        ax.set_xticks([1, 2, 3], ["1 emergent", "2 hints", "3 roles"])
        ax.set_xlabel("Coordination level")
    panels[0][1].set_ylabel("Progression (%, mean, 95% CI)\nn = games (seeds) per point")
    panels[0][1].set_ylim(-5, 105)
    panels[-1][1].legend(fontsize=7, frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.suptitle(title, y=1.04)
    sns.despine(fig)
    return _save(fig, out, name)


def rq3_figure(behaviour: pl.DataFrame, out: Path) -> list[Path]:
    """Coordination behaviour by level: a panel per metric, a line per game and model."""
    metrics = [m for m in ("possession_share", "passes", "both_chasing_rate",
                           "mean_teammate_distance", "role_adherence", "contested_rate")
               if m in behaviour.columns and behaviour[m].null_count() < behaviour.height]
    frame = _with_series(behaviour, ["task", "model", "agent"]).sort("coordination_level")
    labels = frame["series"].unique(maintain_order=True).to_list()
    colours = dict(zip(labels, sns.color_palette(PALETTE, len(labels)), strict=True))
    fig, axes = plt.subplots(1, len(metrics), figsize=(3.3 * len(metrics), 3.2),
                             squeeze=False)
    for metric, ax in zip(metrics, axes[0], strict=True):
        for label in labels:
            rows = frame.filter((pl.col("series") == label) & pl.col(metric).is_not_null())
            if not rows.is_empty():
                ax.plot(rows["coordination_level"], rows[metric], marker="o",
                        color=colours[label], label=label)
        ax.set_title(metric.replace("_", " "), fontsize=9)
        ax.set_xticks([1, 2, 3])
        ax.set_xlabel("Coordination level")
    axes[0][0].set_ylabel("Mean per episode")
    handles = {}
    for ax in axes[0]:  # a game's lines appear only in its own metrics' panels
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    fig.legend(handles.values(), handles.keys(), fontsize=7, frameon=False,
               loc="upper left", bbox_to_anchor=(1.0, 0.9))
    fig.suptitle("RQ3: team behaviour by coordination level", y=1.04)
    sns.despine(fig)
    return _save(fig, out, "rq3_behaviour")


def per_task_figure(per_task: pl.DataFrame, out: Path) -> list[Path]:
    """Each environment's tasks: mean progression (SE bars) per model/agent, n shown."""
    frame = per_task.with_columns((pl.col("model") + " / " + pl.col("agent")).alias("entry"))
    entries = frame["entry"].unique(maintain_order=True).to_list()
    colours = dict(zip(entries, sns.color_palette(PALETTE, len(entries)), strict=True))
    env_names = frame["env"].unique(maintain_order=True).to_list()
    columns = min(3, len(env_names))
    rows = -(-len(env_names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False)
    for ax, env in zip(axes.flat, env_names, strict=False):
        part = frame.filter(pl.col("env") == env)
        tasks = part["task"].unique(maintain_order=True).to_list()
        _grouped_bars(ax, part, "task", tasks, colours, n_prefix="", fontsize=6)
        ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right", fontsize=7)
        ax.set_title(env)
        ax.set_ylim(0, 105)
        ax.set_ylabel("Progression (%, mean ± SE)")
    for ax in list(axes.flat)[len(env_names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, frameon=False, loc="upper left",
               bbox_to_anchor=(1.0, 0.95), title="model / agent (n above bars)")
    fig.tight_layout()
    sns.despine(fig)
    return _save(fig, out, "per_task")


def draw_figures(tables: str | Path, out: str | Path) -> list[Path]:
    """The leaderboard and per-task figures, and RQ1-RQ3 where their tables exist."""
    tables, out = Path(tables), Path(out)
    per_env = pl.read_csv(tables / "per_env.csv")
    balrog = per_env.filter(pl.col("env").is_in(BALROG_ENVS))
    others = per_env.filter(~pl.col("env").is_in(BALROG_ENVS))
    paths = []
    for path in (out / "leaderboard.png", out / "other_envs.png"):  # from an older grid
        path.unlink(missing_ok=True)
        path.with_suffix(".pdf").unlink(missing_ok=True)
    if not balrog.is_empty():  # BALROG's six environments only: its leaderboard's
        paths += leaderboard_figure(balrog, out)
    if not others.is_empty():  # MiniGrid, and MultiGrid pooled over its cells
        paths += leaderboard_figure(others, out, "other_envs",
                                    "Progression in the environments beyond BALROG's")
    paths += per_task_figure(pl.read_csv(tables / "per_task.csv"), out)
    if (tables / "rq1_performance.csv").exists():
        paths += _levels_plot(pl.read_csv(tables / "rq1_performance.csv"), out, "rq1_levels",
                              ["model", "agent"], "RQ1: performance by coordination level")
        paths += _levels_plot(pl.read_csv(tables / "rq2_performance.csv"), out, "rq2_modes",
                              ["model", "agent", "observation_mode"],
                              "RQ2: egocentric vs visible teammates")
        paths += rq3_figure(pl.read_csv(tables / "rq3_behaviour.csv"), out)
    return paths
