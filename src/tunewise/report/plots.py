"""The report's plots as inline SVG strings, drawn with matplotlib's object API (no pyplot state).

Text goes into the SVG as <text> elements (svg.fonttype none: small files, selectable text), and
matplotlib's SVG writer XML-escapes it, so candidate names from the results cannot add markup.
Mathtext is off: a name with dollar signs is shown as typed, not parsed.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from tunewise.report.cells import shown
from tunewise.schemas.run_candidate import CandidateRecord, CostRecord
from tunewise.schemas.run_file import RunRecord, read_run

RC = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# The XML prolog, the DOCTYPE and the metadata block are useless inline and carry URLs.
_STRIP = re.compile(r"<\?xml.*?\?>|<!DOCTYPE.*?>|<metadata>.*?</metadata>", re.S)
# Where matplotlib's SVG defines an id or refers to one.
_IDS = re.compile(r"""(\bid="|url\(#|href="#)""")
_TAG = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Plot:
    key: str
    title: str
    caption: str
    svg: str


def _new_axes() -> tuple[Figure, Axes]:
    figure = Figure(figsize=(7.0, 3.8), layout="constrained")
    FigureCanvasAgg(figure)  # an explicit Agg canvas: the global pyplot backend is left alone
    return figure, figure.add_subplot()


def _plain_log_x(ax: Axes, ticks: list[float] | None = None) -> None:
    """A log x axis labelled in plain numbers: the default labels are mathtext, shown raw with
    mathtext off."""
    ax.set_xscale("log")
    if ticks:
        ax.set_xticks(ticks)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _legend_outside(ax: Axes) -> None:
    # Long candidate names must not cover the data.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def to_svg(figure: Figure, prefix: str) -> str:
    """The figure as an inline <svg> element. Its ids (axes_1, clip paths...) are prefixed with
    `prefix` so several plots share a page without colliding; the fixed hash salt keeps the
    output the same from run to run."""
    buffer = io.StringIO()
    with rc_context({**RC, "svg.hashsalt": prefix}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    svg = _STRIP.sub("", buffer.getvalue()).strip()
    # Rewritten inside tags only, so text drawn from the results is left exactly as written.
    return _TAG.sub(lambda tag: _IDS.sub(rf"\1{prefix}-", tag.group(0)), svg)


def _cost_axis(measured: list[CandidateRecord]) -> tuple[str, list[float | None]]:
    """USD per 1,000 requests when every candidate is priced, else compute seconds per 1,000."""
    costs = [c.cost or CostRecord() for c in measured]
    priced = [cost.per_1000_requests_usd for cost in costs]
    if priced and all(value is not None for value in priced):
        return "USD per 1,000 requests", priced
    seconds = [cost.compute_seconds_per_request for cost in costs]
    return "compute seconds per 1,000 requests", [
        s * 1000 if s is not None else None for s in seconds
    ]


def quality_vs_cost(run: RunRecord) -> Figure | None:
    metric = run.primary_metric()
    measured = [c for c in run.measured() if metric in c.metrics]
    label, xs = _cost_axis(measured)
    points = [(c, x) for c, x in zip(measured, xs, strict=True) if x is not None]
    if metric is None or not points:
        return None
    figure, ax = _new_axes()
    for candidate, x in points:
        m = candidate.metrics[metric]
        error = [[m.value - m.ci_low], [m.ci_high - m.value]]
        ax.errorbar([x], [m.value], yerr=error, fmt="o", capsize=4)
        ax.annotate(candidate.name, (x, m.value), xytext=(6, 4), textcoords="offset points")
    target = _target(run, metric)
    if target is not None:
        ax.axhline(target, color="tab:red", linestyle="--", linewidth=1, label=f"target {target:g}")
        ax.legend(loc="best")
    values = [x for _, x in points]
    if min(values) > 0 and max(values) / min(values) > 50:
        _plain_log_x(ax)
    ax.margins(x=0.12)
    ax.set_xlabel(label)
    ax.set_ylabel(f"{metric} (95% CI)")
    return figure


def _target(run: RunRecord, metric: str | None) -> float | None:
    target = run.task.target
    return target.min if target is not None and target.metric == metric else None


def learning_curve(run: RunRecord) -> Figure | None:
    curve = run.learning_curve
    if curve is None or not curve.points:
        return None
    points = curve.points
    figure, ax = _new_axes()
    xs = [p.examples for p in points]
    ys = [p.value for p in points]
    errors = [[p.value - p.ci_low for p in points], [p.ci_high - p.value for p in points]]
    ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=4, label="measured (95% CI)")
    needed = curve.examples_needed_high or curve.examples_needed
    right = max([*xs, needed or 0]) * 1.3
    fit = [curve.ceiling, curve.scale, curve.rate]
    if all(isinstance(v, int | float) and math.isfinite(v) for v in fit):
        ceiling, scale, rate = fit
        grid = [min(xs) * (right / min(xs)) ** (i / 99) for i in range(100)]
        ax.plot(grid, [ceiling - scale * x**-rate for x in grid], label="fitted curve")
    if curve.target is not None:
        ax.axhline(curve.target, color="tab:red", linestyle="--", linewidth=1, label="target")
    if curve.examples_needed:
        ax.axvline(curve.examples_needed, color="grey", linestyle=":", label="examples needed")
    _plain_log_x(ax, sorted(set(xs)))
    ax.set_xlabel("training examples")
    ax.set_ylabel(curve.metric or "quality")
    _legend_outside(ax)
    return figure


def _cumulative(cost: CostRecord, usd: bool, per_month: float, month: float) -> float:
    if usd and cost.setup is not None:
        return (cost.setup.usd or 0.0) + (cost.monthly_usd or 0.0) * month
    setup = cost.setup_seconds or 0.0
    return setup + (cost.compute_seconds_per_request or 0.0) * per_month * month


def cumulative_cost(run: RunRecord) -> Figure | None:
    costs = {c.name: c.cost for c in run.measured() if c.cost and c.cost.setup}
    if not costs:
        return None
    horizon = _horizon(run)
    per_month = float(run.task.usage.requests_per_month or 0)
    usd = all(cost.setup is not None and cost.setup.usd is not None
              and cost.monthly_usd is not None for cost in costs.values())  # fmt: skip
    months = list(range(horizon + 1))
    figure, ax = _new_axes()
    for name, cost in costs.items():
        ax.plot(months, [_cumulative(cost, usd, per_month, m) for m in months], label=name)
    for entry in run.break_even:
        tuned, at = costs.get(entry.tuned or ""), entry.months
        if tuned is None or at is None or at > horizon:
            continue
        y = _cumulative(tuned, usd, per_month, at)
        ax.plot([at], [y], marker="D", color="black", linestyle="none")
        note = f"break-even {entry.tuned} vs {shown(entry.prompt)}"
        ax.annotate(note, (at, y), xytext=(6, -12), textcoords="offset points")
    ax.set_xlabel(f"months (at {per_month:,.0f} requests per month)")
    ax.set_ylabel("cumulative USD" if usd else "cumulative compute seconds")
    _legend_outside(ax)
    return figure


def _horizon(run: RunRecord) -> int:
    horizon = run.task.usage.horizon_months
    return 12 if horizon is None else horizon


def latency(run: RunRecord) -> Figure | None:
    measured = [c for c in run.measured() if c.usage.latency_p50_ms is not None]
    if not measured:
        return None
    figure, ax = _new_axes()
    positions = list(range(len(measured)))
    p50 = [c.usage.latency_p50_ms or 0.0 for c in measured]
    p95 = [c.usage.latency_p95_ms or 0.0 for c in measured]
    for offset, heights, name in ((-0.2, p50, "p50"), (0.2, p95, "p95")):
        ax.bar([p + offset for p in positions], heights, width=0.4, label=name)
    names = [c.name for c in measured]
    crowded = len(names) > 4 or max(len(name) for name in names) > 14
    ax.set_xticks(
        positions, names, rotation=20 if crowded else 0, ha="right" if crowded else "center"
    )
    ax.set_ylabel("latency per request (ms)")
    _legend_outside(ax)
    return figure


Draw = Callable[[RunRecord], Figure | None]
PLOTS: tuple[tuple[str, str, str, Draw], ...] = (
    ("quality", "Quality against cost",
     "One point per candidate with its 95% CI; dashed: the target.", quality_vs_cost),
    ("learning-curve", "Learning curve",
     "Fine-tuned quality against training examples, with the fitted curve.", learning_curve),
    ("cost", "Cumulative cost over the horizon",
     "Setup, then a month of traffic per step; diamonds mark break-even points.",
     cumulative_cost),
    ("latency", "Latency", "Per-request latency on the measuring machine, p50 and p95.",
     latency),
)  # fmt: skip


def render_plots(results: Mapping[str, Any] | RunRecord) -> list[Plot]:
    """Every plot the results have data for, in report order."""
    run = read_run(results)
    plots = []
    with rc_context(RC):
        for key, title, caption, draw in PLOTS:
            figure = draw(run)
            if figure is not None:
                caption = _cost_caption(run) if key == "cost" else caption
                plots.append(Plot(key, title, caption, to_svg(figure, f"tunewise-{key}")))
    return plots


def _cost_caption(run: RunRecord) -> str:
    """The diamonds are promised only when some break-even falls within the horizon."""
    horizon = _horizon(run)
    drawn = any(e.months is not None and e.months <= horizon for e in run.break_even)
    steps = "Setup, then a month of traffic per step; "
    if drawn:
        return steps + "diamonds mark break-even points."
    return steps + "no fine-tuned candidate breaks even within the horizon."


def plot_titles(results: Mapping[str, Any] | RunRecord) -> list[str]:
    """The titles render_plots would draw, for the Markdown report's pointer to the HTML."""
    run = read_run(results)
    with rc_context(RC):
        return [title for _, title, _, draw in PLOTS if draw(run) is not None]
