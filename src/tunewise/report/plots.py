"""The report's plots as inline SVG strings, drawn with matplotlib's object API (no pyplot state).

Text goes into the SVG as <text> elements (svg.fonttype none: small files, selectable text), and
matplotlib's SVG writer XML-escapes it, so candidate names from the results cannot add markup.
Mathtext is off: a name with dollar signs is shown as typed, not parsed.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from matplotlib import rc_context
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

from tunewise.report.content import measured_candidates, primary_metric

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


def _cost_axis(measured: list[dict[str, Any]]) -> tuple[str, list[float | None]]:
    """USD per 1,000 requests when every candidate is priced, else compute seconds per 1,000."""
    costs = [c.get("cost") or {} for c in measured]
    priced = [cost.get("per_1000_requests_usd") for cost in costs]
    if priced and all(value is not None for value in priced):
        return "USD per 1,000 requests", priced
    seconds = [cost.get("compute_seconds_per_request") for cost in costs]
    return "compute seconds per 1,000 requests", [
        s * 1000 if s is not None else None for s in seconds
    ]


def quality_vs_cost(results: dict[str, Any]) -> Figure | None:
    metric = primary_metric(results)
    measured = [c for c in measured_candidates(results) if metric in c.get("metrics", {})]
    label, xs = _cost_axis(measured)
    points = [(c, x) for c, x in zip(measured, xs, strict=True) if x is not None]
    if metric is None or not points:
        return None
    figure, ax = _new_axes()
    for candidate, x in points:
        m = candidate["metrics"][metric]
        error = [[m["value"] - m["ci_low"]], [m["ci_high"] - m["value"]]]
        ax.errorbar([x], [m["value"]], yerr=error, fmt="o", capsize=4)
        ax.annotate(candidate["name"], (x, m["value"]), xytext=(6, 4), textcoords="offset points")
    target = _target(results, metric)
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


def _target(results: dict[str, Any], metric: str | None) -> float | None:
    target = (results.get("task") or {}).get("target") or {}
    return target.get("min") if target.get("metric") == metric else None


def learning_curve(results: dict[str, Any]) -> Figure | None:
    curve = results.get("learning_curve") or {}
    points = curve.get("points") or []
    if not points:
        return None
    figure, ax = _new_axes()
    xs = [p["examples"] for p in points]
    ys = [p["value"] for p in points]
    errors = [
        [p["value"] - p["ci_low"] for p in points],
        [p["ci_high"] - p["value"] for p in points],
    ]
    ax.errorbar(xs, ys, yerr=errors, fmt="o", capsize=4, label="measured (95% CI)")
    needed = curve.get("examples_needed_high") or curve.get("examples_needed")
    right = max([*xs, needed or 0]) * 1.3
    fit = [curve.get(key) for key in ("ceiling", "scale", "rate")]
    if all(isinstance(v, int | float) and math.isfinite(v) for v in fit):
        ceiling, scale, rate = fit
        grid = [min(xs) * (right / min(xs)) ** (i / 99) for i in range(100)]
        ax.plot(grid, [ceiling - scale * x**-rate for x in grid], label="fitted curve")
    if curve.get("target") is not None:
        ax.axhline(curve["target"], color="tab:red", linestyle="--", linewidth=1, label="target")
    if curve.get("examples_needed"):
        ax.axvline(curve["examples_needed"], color="grey", linestyle=":", label="examples needed")
    _plain_log_x(ax, sorted(set(xs)))
    ax.set_xlabel("training examples")
    ax.set_ylabel(str(curve.get("metric", "quality")))
    _legend_outside(ax)
    return figure


def _cumulative(c: dict[str, Any], usd: bool, per_month: float, month: float) -> float:
    cost = c["cost"]
    if usd:
        return cost["setup"]["usd"] + cost["monthly_usd"] * month
    setup = cost.get("setup_seconds") or 0.0
    return setup + cost.get("compute_seconds_per_request", 0.0) * per_month * month


def cumulative_cost(results: dict[str, Any]) -> Figure | None:
    measured = [c for c in measured_candidates(results) if (c.get("cost") or {}).get("setup")]
    if not measured:
        return None
    usage = (results.get("task") or {}).get("usage") or {}
    horizon = int(usage.get("horizon_months", 12))
    per_month = float(usage.get("requests_per_month", 0))
    usd = all(c["cost"]["setup"].get("usd") is not None and c["cost"].get("monthly_usd") is not None
              for c in measured)  # fmt: skip
    months = list(range(horizon + 1))
    by_name = {c["name"]: c for c in measured}
    figure, ax = _new_axes()
    for c in measured:
        ax.plot(months, [_cumulative(c, usd, per_month, m) for m in months], label=c["name"])
    for entry in results.get("break_even") or []:
        tuned, at = by_name.get(entry.get("tuned")), entry.get("months")
        if tuned is None or at is None or at > horizon:
            continue
        y = _cumulative(tuned, usd, per_month, at)
        ax.plot([at], [y], marker="D", color="black", linestyle="none")
        note = f"break-even {entry['tuned']} vs {entry.get('prompt', '?')}"
        ax.annotate(note, (at, y), xytext=(6, -12), textcoords="offset points")
    ax.set_xlabel(f"months (at {per_month:,.0f} requests per month)")
    ax.set_ylabel("cumulative USD" if usd else "cumulative compute seconds")
    _legend_outside(ax)
    return figure


def latency(results: dict[str, Any]) -> Figure | None:
    measured = [c for c in measured_candidates(results) if "latency_p50_ms" in c.get("usage", {})]
    if not measured:
        return None
    figure, ax = _new_axes()
    positions = list(range(len(measured)))
    for offset, key, name in ((-0.2, "latency_p50_ms", "p50"), (0.2, "latency_p95_ms", "p95")):
        heights = [c["usage"].get(key, 0.0) for c in measured]
        ax.bar([p + offset for p in positions], heights, width=0.4, label=name)
    names = [c["name"] for c in measured]
    crowded = len(names) > 4 or max(len(name) for name in names) > 14
    ax.set_xticks(
        positions, names, rotation=20 if crowded else 0, ha="right" if crowded else "center"
    )
    ax.set_ylabel("latency per request (ms)")
    _legend_outside(ax)
    return figure


Draw = Callable[[dict[str, Any]], Figure | None]
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


def render_plots(results: dict[str, Any]) -> list[Plot]:
    """Every plot the results have data for, in report order."""
    plots = []
    with rc_context(RC):
        for key, title, caption, draw in PLOTS:
            figure = draw(results)
            if figure is not None:
                caption = _cost_caption(results) if key == "cost" else caption
                plots.append(Plot(key, title, caption, to_svg(figure, f"tunewise-{key}")))
    return plots


def _cost_caption(results: dict[str, Any]) -> str:
    """The diamonds are promised only when some break-even falls within the horizon."""
    horizon = ((results.get("task") or {}).get("usage") or {}).get("horizon_months", 12)
    drawn = any(
        e.get("months") is not None and e["months"] <= horizon
        for e in results.get("break_even") or []
    )
    steps = "Setup, then a month of traffic per step; "
    if drawn:
        return steps + "diamonds mark break-even points."
    return steps + "no fine-tuned candidate breaks even within the horizon."


def plot_titles(results: dict[str, Any]) -> list[str]:
    """The titles render_plots would draw, for the Markdown report's pointer to the HTML."""
    with rc_context(RC):
        return [title for _, title, _, draw in PLOTS if draw(results) is not None]
