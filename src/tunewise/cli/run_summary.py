"""The terminal summary of a run, rendered from results.json so `report` shows the same thing."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from tunewise.schemas.run_candidate import (
    ConsistencyRecord,
    CostRecord,
    FlakinessRecord,
    MetricRecord,
    UsageRecord,
)
from tunewise.schemas.run_file import RunRecord, read_run
from tunewise.schemas.run_sections import JudgeRecord, LadderRecord, RecommendationRecord

USAGE_ROWS: tuple[tuple[str, Callable[[UsageRecord], float | None], str], ...] = (
    ("input tokens / request", lambda usage: usage.input_tokens_per_request, "{:.0f}"),
    ("output tokens / request", lambda usage: usage.output_tokens_per_request, "{:.1f}"),
    ("latency p50 (ms)", lambda usage: usage.latency_p50_ms, "{:.0f}"),
    ("latency p95 (ms)", lambda usage: usage.latency_p95_ms, "{:.0f}"),
)


COST_ROWS: tuple[tuple[str, Callable[[CostRecord], float | None]], ...] = (
    ("$ / 1,000 requests", lambda cost: cost.per_1000_requests_usd),
    ("setup $", lambda cost: cost.setup.usd if cost.setup else None),
    ("$ over the horizon", lambda cost: cost.horizon_usd),
)


def _consistency_cell(consistency: ConsistencyRecord | None) -> str:
    """'0.62-0.68 over 3, 85% alike': the metric's range across draws, and answer agreement."""
    if not consistency or not consistency.spread or not consistency.agreement:
        return "-"
    spread = consistency.spread
    return (
        f"{spread.min:.3f}-{spread.max:.3f} over {consistency.redraws}, "
        f"{consistency.agreement.value:.0%} alike"
    )


def _flaky_cell(flakiness: FlakinessRecord | None) -> str:
    if not flakiness or not flakiness.flaky_examples:
        return "-"
    return f"{_metric_cell(flakiness.flaky_examples)} ({flakiness.repeats} samples)"


def _metric_cell(metric: MetricRecord | None) -> str:
    if metric is None:
        return "-"
    return f"{metric.value:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"


def _number(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _dataset_rows(table: Table, run: RunRecord, metric: str, names: list[str]) -> None:
    """With several datasets: the primary metric on each other dataset, then the macro mean."""
    for dataset in run.datasets[1:]:  # the first is the main dataset, shown above
        scores = dataset.candidates
        cells = [_metric_cell(scores.get(n, {}).get(metric)) for n in names]
        table.add_row(f"{metric.replace('_', ' ')} on {dataset.name}", *cells)
    if run.datasets:
        macro = run.macro or {}
        cells = [_number(macro.get(n, {}).get(metric), "{:.3f}") for n in names]
        table.add_row(f"macro {metric.replace('_', ' ')}", *cells)


def render_table(results: Mapping[str, Any] | RunRecord) -> Group:
    """One column per candidate: each metric (value and 95% CI), tokens, latency; then the
    decision. Candidates are columns so the table stays readable in a narrow terminal."""
    run = read_run(results)
    candidates = run.measured()
    recommendation = run.recommendation or RecommendationRecord()
    data = run.data
    models = sorted({c.model or "" for c in candidates})
    title = (
        f"{run.task.name}: {data.test_examples} test examples, "
        f"{data.train_examples} train, seed {run.seed}, model {', '.join(models)}"
    )
    table = Table(title=title, caption="metric: value [95% CI], n = test examples answered")
    table.add_column("")
    for candidate in candidates:
        marked = candidate.name == recommendation.candidate
        table.add_column(candidate.name + (" *" if marked else ""), justify="right")
    # Retrieval metrics exist only for retrieving candidates: rows are the union, "-" elsewhere.
    for name in dict.fromkeys(name for c in candidates for name in c.metrics):
        cells = [_metric_cell(c.metrics.get(name)) for c in candidates]
        table.add_row(name.replace("_", " "), *cells)
    fresh = [c.freshness.metrics if c.freshness else {} for c in candidates]
    for name in dict.fromkeys(name for f in fresh for name in f):
        table.add_row(
            f"after update: {name.replace('_', ' ')}", *(_metric_cell(f.get(name)) for f in fresh)
        )
    _dataset_rows(table, run, str(recommendation.metric), [c.name for c in candidates])
    for label, figure, form in USAGE_ROWS:
        table.add_row(label, *(_number(figure(c.usage), form) for c in candidates))
    if any(c.consistency for c in candidates):
        table.add_row("demo re-draws", *(_consistency_cell(c.consistency) for c in candidates))
    if any(c.flakiness for c in candidates):
        table.add_row("flaky examples", *(_flaky_cell(c.flakiness) for c in candidates))
    costs = [c.cost or CostRecord() for c in candidates]
    table.add_row("setup (s)", *(_number(cost.setup_seconds, "{:.0f}") for cost in costs))
    priced = any(cost.per_request and cost.per_request.usd is not None for cost in costs)
    for label, cell in COST_ROWS if priced else ():  # dollars only once something has a price
        table.add_row(label, *(_number(cell(cost), "{:,.4g}") for cost in costs))
    skipped = [c for c in run.candidates if not c.measured]
    notes = Text("".join(f"{c.name}: skipped, {c.skipped_reason}\n" for c in skipped))
    for candidate in candidates:
        if candidate.setup.training:
            notes.append(_training_line(candidate.name, candidate.setup.training))
    if run.judge:
        notes.append(_judge_line(run.judge))
    return Group(table, notes, _ladder(run.ladder), _decision(recommendation))


def _ladder(ladder: LadderRecord | None) -> Text:
    """The walk, one line per step; each reduction the budget made; the commands left out."""
    text = Text()
    if not ladder:
        return text
    budget = ladder.budget_seconds
    limit = "" if budget is None else f" of its {budget / 60:.1f} min budget"
    charged = f"{ladder.compute_seconds / 60:.1f} min of compute{limit}"
    text.append(f"The ladder ({charged}; {ladder.seconds / 60:.1f} min here):\n", style="bold")
    for step in ladder.steps:
        ran = f", {step.seconds:.0f} s" if step.status == "run" else ""
        text.append(f"  {step.step}. {step.title}: {step.status}{ran}: {step.reason}\n")
        if step.command and step.status != "skipped":
            text.append(f"     run it: {step.command}\n")
    for cut in ladder.reductions:
        text.append(
            f"  reduced to fit: step {cut.step} {cut.candidate} {cut.setting} "
            f"{cut.before} -> {cut.after}\n"
        )
    if ladder.stopped:
        text.append(f"  stopped: {ladder.stopped}\n")
    return text


def _training_line(name: str, training: Mapping[str, Any]) -> str:
    """The training record is an open block: a figure it does not hold shows as '?'."""
    source = "reused from the cache" if training.get("cached") else "trained"
    flag = "; validation loss rose: overfitting" if training.get("overfitting") else ""
    seconds = training.get("seconds")
    took = f"{seconds:.0f}" if isinstance(seconds, int | float) else "?"
    examples, steps = training.get("examples", "?"), training.get("steps", "?")
    return (
        f"{name}: {source}, {examples} examples, {steps} steps, {took} s, "
        f"best validation loss {training.get('best_validation_loss', '?')}{flag}\n"
    )


def _judge_line(judge: JudgeRecord) -> str:
    """Who judged, what it cost in all, and how far its grades can be trusted."""
    usage, usd = judge.usage, judge.cost.usd if judge.cost else None
    price = "" if usd is None else f", ${usd:.4g}"
    line = (
        f"judge: {judge.model} ({judge.mode}), {usage.requests} verdicts, "
        f"{usage.calls} calls, {usage.input_tokens + usage.output_tokens:,} tokens, "
        f"{usage.seconds:.0f} s{price}"
    )
    calibration, consistency = judge.calibration, judge.self_consistency
    if calibration and calibration.spearman:
        rho = calibration.spearman
        line += (
            f"; agreement with human grades: Spearman {rho.value:.2f} "
            f"[{rho.ci_low:.2f}, {rho.ci_high:.2f}], n={rho.n}"
        )
    elif consistency:
        agreement = consistency.agreement
        line += (
            f"; self-consistency over two samplings {agreement.value:.2f} "
            f"[{agreement.ci_low:.2f}, {agreement.ci_high:.2f}]"
        )
    return line + "\n"


def _decision(recommendation: RecommendationRecord) -> Text:
    text = Text()
    chosen = recommendation.candidate
    headline = {
        "blocked": "A candidate meets the target, but a gate of step 3 blocks it:",
        "target-missed": "No candidate meets the target yet.",
    }
    if chosen:
        text.append(f"Recommendation (step {recommendation.step}): {chosen}\n", style="bold green")
    else:
        verdict = recommendation.verdict or "target-missed"
        text.append(headline.get(verdict, verdict) + "\n", style="bold yellow")
        if recommendation.closest:
            text.append(f"Closest: {recommendation.closest} (step {recommendation.closest_step})\n")
    for reason in recommendation.reasons:
        text.append(f"  - {reason}\n")
    if recommendation.changes:
        text.append("What would change it:\n")
    for change in recommendation.changes:
        text.append(f"  - {change}\n")
    following = recommendation.next_step
    if following:
        text.append("Next step: ", style="bold")
        text.append(following.action + "\n")
        if following.command:
            text.append(f"  {following.command}\n", style="cyan")
    return text
