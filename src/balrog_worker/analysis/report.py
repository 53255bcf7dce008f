"""One self-contained HTML page of the results: the leaderboard, the figures and the tables
that answer RQ1-RQ3, read from the aggregated tables and drawn figures alone.

Figures are embedded as PNG data, so the page can be mailed or attached to a paper's
supplement as one file. A small script marks on ``<body>`` how many figures the browser
decoded (``data-figures-shown``), which is what the headless-browser test reads.
"""

from __future__ import annotations

import base64
import datetime
import html
import json
import logging
from pathlib import Path

import polars as pl

from balrog_worker.provenance import git_revision, package_versions

log = logging.getLogger(__name__)

# (file stem, heading, what it shows): the page's sections in reading order.
SECTIONS = [
    ("leaderboard", "Leaderboard",
     "Mean progression (%) per model and agent on BALROG's six environments, ± standard "
     "error. BALROG's overall score (the mean over the six) is given only to rows that "
     "played all six; the others show their coverage. MiniGrid and MultiGrid are in the "
     "table of other environments."),
    ("other_envs", "Other environments",
     "MiniGrid, and MultiGrid pooled over its games, levels, modes and opponents (the RQ "
     "sections below keep those apart); not part of BALROG's overall score."),
    ("per_task", "Per task", "Each environment's tasks, mean progression ± SE."),
    ("usage", "Model calls", "From the step records, per model that answered: calls, "
     "invalid answers, latency, tokens per call and cost. In a match against another "
     "model, that model's calls are its own rows (side: opponent)."),
    ("rq1_levels", "RQ1: coordination levels",
     "MultiGrid performance by coordination level (95% bootstrap intervals), and paired "
     "Wilcoxon tests between levels on shared seeds with Holm-adjusted p-values."),
    ("rq2_modes", "RQ2: observation modes",
     "visible_teammates against egocentric, paired by seed within each level."),
    ("rq3_behaviour", "RQ3: role-based team strategy",
     "Coordination behaviour (possession, passes, both players chasing, teammate spread, "
     "role adherence; Collect: balls and contested rate) by coordination level."),
]
# The tables shown under each section's figure.
TABLES = {
    "leaderboard": ["leaderboard", "vs_published"],
    "other_envs": ["other_envs"],
    "per_task": ["per_task"],
    "usage": ["usage"],
    "rq1_levels": ["rq1_performance", "rq1_paired", "model_matches"],
    "rq2_modes": ["rq2_performance", "rq2_paired"],
    "rq3_behaviour": ["rq3_behaviour"],
}
MAX_ROWS = 200  # longer tables are cut, with a pointer to their CSV

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 72rem;
       padding: 0 1rem; color: #1b1b1b; }
h1 { font-size: 1.6rem; } h2 { margin-top: 2.4rem; border-bottom: 1px solid #ddd; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: 0.85rem; margin: 0.8rem 0; }
th, td { padding: 0.2rem 0.6rem; border-bottom: 1px solid #eee; text-align: right; }
th { background: #f4f4f4; } td.text, th.text { text-align: left; }
.note { color: #555; } .scroll { overflow-x: auto; } code { font-size: 0.9em; }
.animations { display: flex; gap: 1rem; } img.animation { image-rendering: pixelated;
  width: 160px; }
tr.published td { background: #fff1c9; font-style: italic; }
"""
_COUNT_SHOWN = """
window.addEventListener("load", () => {
  const shown = [...document.images].filter(i => i.complete && i.naturalWidth > 0);
  const animations = shown.filter(i => i.classList.contains("animation"));
  document.body.dataset.figuresShown = String(shown.length - animations.length);
  document.body.dataset.animationsShown = String(animations.length);
});
"""


def _cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:,.2f}"
    return html.escape(str(value))


def html_table(table: pl.DataFrame, source: str) -> str:
    """A table as HTML: numbers right-aligned, text left, long tables cut."""
    text = {name for name, dtype in table.schema.items() if dtype == pl.String}

    def cls(name: str) -> str:
        return ' class="text"' if name in text else ""

    more = (f'<p class="note">First {MAX_ROWS} of {table.height} rows; all in '
            f"<code>{html.escape(source)}</code>.</p>" if table.height > MAX_ROWS else "")

    def row_cls(row: dict) -> str:  # a row published on BALROG's leaderboard
        return ' class="published"' if row.get("published") else ""

    head = "".join(f"<th{cls(n)}>{html.escape(n)}</th>" for n in table.columns)
    rows = "".join(
        f"<tr{row_cls(row)}>" + "".join(f"<td{cls(n)}>{_cell(v)}</td>"
                                        for n, v in row.items()) + "</tr>"
        for row in table.head(MAX_ROWS).iter_rows(named=True)
    )
    if "published" in table.columns and table["published"].is_not_null().any():
        more += ('<p class="note">Shaded rows are published on BALROG\'s leaderboard '
                 "(balrog-ai/experiments), imported beside this run's rows; "
                 "<code>published</code> names the submission and <code>protocol_notes</code> "
                 "what is known to differ in the protocol it played.</p>")
    return (f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table></div>{more}")


def _figure(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
            f"<figcaption class=\"note\">{html.escape(path.name)} (PDF beside it)"
            "</figcaption></figure>")


def _summary(tables: Path) -> str:
    """Counts of what the page covers, from the per-environment table."""
    per_env = pl.read_csv(tables / "per_env.csv")
    facts = {
        "episodes": int(per_env["episodes"].sum()),
        "models": per_env["model"].n_unique(),
        "agents": per_env["agent"].n_unique(),
        "environments": per_env["env"].n_unique(),
        "cost (USD)": f"{per_env['cost_usd'].sum():.2f}",
    }
    items = "".join(f"<li>{html.escape(k)}: <b>{_cell(v)}</b></li>" for k, v in facts.items())
    return f"<ul>{items}</ul>"


def render_report(reports: str | Path) -> str:
    """The page for ``reports`` (holding tables/ and figures/), as an HTML string."""
    reports = Path(reports)
    tables, figures = reports / "tables", reports / "figures"
    if not (tables / "per_env.csv").exists():
        raise FileNotFoundError(f"no aggregated tables in {tables} (run aggregate first)")
    versions = package_versions()
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    parts = [
        "<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>balrog-worker results</title>", f"<style>{_STYLE}</style>",
        f"<script>{_COUNT_SHOWN}</script></head><body>",
        "<h1>balrog-worker results</h1>",
        f'<p class="note">Generated {stamp} from <code>{html.escape(str(reports))}</code> '
        f"by balrog-worker {html.escape(str(versions.get('balrog-worker')))} "
        f"(code revision <code>{html.escape(str(git_revision()))}</code>). "
        "Every number below comes from the logged episode and step records.</p>",
        _summary(tables),
    ]
    for stem, heading, about in SECTIONS:
        figure = figures / f"{stem}.png"
        shown = [name for name in TABLES[stem] if (tables / f"{name}.csv").exists()]
        if not figure.exists() and not shown:
            continue  # e.g. no RQ sections for a grid without multi-agent cells
        parts += [f'<section id="{stem}"><h2>{html.escape(heading)}</h2>',
                  f'<p class="note">{html.escape(about)}</p>']
        if figure.exists():
            parts.append(_figure(figure, heading))
        for name in shown:
            source = tables / f"{name}.csv"
            parts += [f"<h3>{html.escape(name)}</h3>",
                      html_table(pl.read_csv(source, infer_schema_length=None), str(source))]
        parts.append("</section>")
    metrics = reports / "metrics.json"
    if metrics.exists():
        parts += ['<section id="metrics"><h2>metrics.json</h2>',
                  f"<pre>{html.escape(json.dumps(json.loads(metrics.read_text()), indent=1))}"
                  "</pre></section>"]
    parts.append("</body></html>")
    return "\n".join(parts)


# Animations of this many cells at most (each its best and worst episode) on the page;
# the viewer has every cell.
ANIMATED_CELLS = 60


def _episodes_section(results: Path, viewer: Path) -> str:
    """The episode viewer (written as static files beside the page) and, for each cell,
    its best and worst episode replayed as small animations."""
    from balrog_worker.replay import Replay, ReplayError, write_animation
    from balrog_worker.viewer import export
    from balrog_worker.viewer.data import best_and_worst

    exported, listed = export(results, viewer)
    parts = ['<section id="episodes"><h2>Episodes</h2>',
             f'<p class="note"><a href="{viewer.name}/index.html">Open the episode viewer</a>: '
             "every cell, its episodes, and a step-by-step player of what the model saw, "
             f"answered and did ({exported} episodes exported with their frames; "
             "<code>balrog-worker view</code> replays any episode). Below, each cell's best "
             "and worst episode, replayed from its seed and recorded actions.</p>"]
    for slug in list(listed)[:ANIMATED_CELLS]:
        shown = []
        for label, index in zip(("best", "worst"), best_and_worst(listed[slug]), strict=False):
            name = f"animations/{slug}-{index}.gif"
            try:
                write_animation(Replay(results / slug, index), viewer / name, frame_ms=200,
                                max_side=160, max_frames=60)
            except ReplayError as error:  # a record that cannot be replayed: left out
                log.warning("%s episode %d: no animation (%s)", slug, index, error)
                continue
            shown.append(f'<figure><img class="animation" '
                         f'src="{html.escape(viewer.name)}/{html.escape(name)}" '
                         f'alt="{html.escape(slug)} episode {index:d}"><figcaption '
                         f'class="note">{label}: episode {index:d}</figcaption></figure>')
        parts.append(f"<h3>{html.escape(slug)}</h3><div class=\"animations\">"
                     f"{''.join(shown)}</div>")
    if len(listed) > ANIMATED_CELLS:
        parts.append(f'<p class="note">{len(listed) - ANIMATED_CELLS} more cells: see the '
                     "viewer.</p>")
    parts.append("</section>")
    return "\n".join(parts)


def write_report(reports: str | Path, out: str | Path, results: str | Path | None = None) -> Path:
    """The page (and, given the cells' ``results``, the episode viewer beside it)."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    page = render_report(reports)
    if results is not None:
        section = _episodes_section(Path(results), out.parent / "viewer")
        page = page.replace("</body></html>", f"{section}\n</body></html>")
    out.write_text(page, encoding="utf-8")
    return out
