"""Cells both report formats share: tables, metrics with their intervals, money, seconds."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.schemas.run_candidate import CandidateRecord, MetricRecord


@dataclass(frozen=True)
class Table:
    headers: list[str]
    rows: list[list[str]]


def metric_cell(metric: MetricRecord | None) -> str:
    if not metric:
        return "-"
    low, high = metric.ci_low, metric.ci_high
    return f"{metric.value:.3f} [{low:.3f}, {high:.3f}] (n={metric.n})"


def shown(value: object, missing: str = "?") -> str:
    """A recorded value as text, or `missing` where the file has none."""
    return missing if value is None else str(value)


def usd(amount: float | None) -> str:
    if amount is None:
        return "unpriced"
    if amount == 0 or abs(amount) >= 100:
        return f"${amount:,.0f}"
    return f"${amount:,.2f}" if abs(amount) >= 0.1 else f"${amount:.3g}"


def seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f} s" if value >= 10 or value == 0 else f"{value:.3g} s"


def setup_seconds(c: CandidateRecord) -> float | None:
    """The setup compute the cost model counted, else the setup's measured seconds."""
    if c.cost is not None and c.cost.setup_seconds is not None:
        return c.cost.setup_seconds
    return c.setup.seconds
