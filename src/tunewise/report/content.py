"""What the report says, as plain strings and tables, shared by the HTML and Markdown renderers.

Nothing here escapes anything: each renderer escapes for its own format. results.json is read
through schemas/run_file.py; every optional block (cost, break_even, consistency, learning_curve,
freshness) may be absent or null, and is None or empty there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tunewise.report.cells import Table, metric_cell, seconds, setup_seconds, shown, usd
from tunewise.report.confusions import Confusion, confusions
from tunewise.report.distill import DistillationSection, distillation_section
from tunewise.report.risks import check_lines, languages_table, repair_table
from tunewise.report.search import PromptSearch, prompt_searches
from tunewise.report.walk import NextAction, ladder_notes, ladder_table, next_action
from tunewise.report.worst import ErrorExample, worst_errors
from tunewise.schemas.run_candidate import CandidateRecord, CostRecord, PricedRecord
from tunewise.schemas.run_file import RunRecord, read_run
from tunewise.schemas.run_sections import BreakEvenRecord

CRITERIA = "Fine-tuning vs prompting, criterion by criterion"
HEADLINES = {
    "meets-target": "A candidate meets the target.",
    "no-target": "No target was set: the cheapest measured candidate is shown.",
    "blocked": "A candidate meets the target, but a gate of step 3 blocks it.",
    "target-missed": "No candidate meets the target yet.",
}


@dataclass(frozen=True)
class Decision:
    candidate: str | None
    headline: str
    step: int | None
    verdict: str
    metric: str
    reasons: list[str]
    gates: Table
    alternatives: list[str]
    changes: list[str]
    next_step: NextAction | None = None
    closest: str | None = None  # with no candidate: the best measured one, and its step


@dataclass(frozen=True)
class Report:
    title: str
    facts: list[tuple[str, str]]
    decision: Decision
    candidates: Table
    skipped: list[tuple[str, str]]
    break_even: Table | None
    seed: Table
    freshness: Table | None
    repair: Table | None
    checks: list[str]
    languages: Table | None
    datasets: Table | None
    learning_curve: str | None
    errors: list[tuple[str, list[ErrorExample]]]
    searches: list[PromptSearch] = field(default_factory=list)  # optimized-prompt candidates
    distillation: DistillationSection | None = None  # students trained on a teacher's labels
    ladder: Table | None = None  # the default run's walk up the four steps
    ladder_notes: list[str] = field(default_factory=list)
    confusions: list[Confusion] = field(default_factory=list)  # label tasks


def build_report(
    results: Mapping[str, Any] | RunRecord, predictions: list[dict[str, Any]]
) -> Report:
    """Everything both report formats show, in report order."""
    run = read_run(results)
    measured = run.measured()
    output_format = run.task.output_format or "text"
    primary = run.primary_metric()
    return Report(
        title=f"tunewise report: {shown(run.task.name)}",
        facts=_facts(run),
        decision=_decision(run),
        candidates=_candidates_table(measured),
        skipped=[(c.name, c.skipped_reason or "") for c in run.candidates if not c.measured],
        break_even=_break_even_table(run.break_even),
        seed=_seed_table(measured, primary),
        freshness=_freshness_table(measured),
        repair=repair_table(measured),
        checks=check_lines(run),
        languages=languages_table(run),
        datasets=_datasets_table(run),
        learning_curve=run.learning_curve.summary if run.learning_curve else None,
        errors=[(c.name, worst_errors(output_format, c.name, predictions)) for c in measured],
        searches=prompt_searches(measured),
        distillation=distillation_section(measured, primary),
        ladder=ladder_table(run),
        ladder_notes=ladder_notes(run),
        confusions=confusions(measured),
    )


def measured_candidates(results: Mapping[str, Any] | RunRecord) -> list[CandidateRecord]:
    return read_run(results).measured()


def primary_metric(results: Mapping[str, Any] | RunRecord) -> str | None:
    """The target metric when the candidates report it, else the first metric measured."""
    return read_run(results).primary_metric()


def _facts(run: RunRecord) -> list[tuple[str, str]]:
    data, machine = run.data, run.machine
    models = sorted({c.model for c in run.candidates if c.model})
    available = (
        data.test_examples
        if data.test_examples_available is None
        else (data.test_examples_available)
    )
    hardware = [machine.platform, f"{machine.cpus} CPUs"]
    hardware += [f"Python {machine.python}", machine.torch and f"torch {machine.torch}"]
    return [
        ("Task", shown(run.task.name)),
        ("Run id", run.run_id),
        ("Created", shown(run.created_at)),
        ("Model(s)", ", ".join(models) or "-"),
        ("Seed", shown(run.seed, "-")),
        ("Data hash", (data.hash or "")[:12] or "-"),
        ("Test examples", f"{shown(data.test_examples)} (of {available} available)"),
        ("Train examples", shown(data.train_examples)),
        ("Code version", shown(run.code_version)),
        ("Machine", ", ".join(str(part) for part in hardware if part)),
    ]


def _decision(run: RunRecord) -> Decision:
    rec = run.recommendation
    verdict = (rec.verdict if rec else None) or "target-missed"
    if rec is None:
        return Decision(None, HEADLINES[verdict], None, verdict, "", [],
                        Table(["Step", "Question", "Passed", "Detail"], []), [], [])  # fmt: skip
    gates = [
        [shown(g.step, ""), g.question, "yes" if g.passed else "no", g.detail] for g in rec.gates
    ]
    return Decision(
        candidate=rec.candidate,
        headline=HEADLINES.get(verdict, verdict),
        step=rec.step,
        verdict=verdict,
        metric=rec.metric or "",
        reasons=list(rec.reasons),
        gates=Table(["Step", "Question", "Passed", "Detail"], gates),
        alternatives=list(rec.alternatives),
        changes=list(rec.changes),
        next_step=next_action(run),
        closest=None
        if rec.candidate or not rec.closest
        else f"{rec.closest} (step {rec.closest_step})",
    )


def _cost_rows(cost: CostRecord) -> list[tuple[str, str]]:
    # A cost block written before prices existed has only the compute figure.
    rows = [("compute s / request", seconds(cost.compute_seconds_per_request))]
    priced = cost.per_request is not None
    if cost.per_request is not None:
        rows.append(("USD / request", _priced(cost.per_request)))
    if priced:
        rows.append(("USD / 1,000 requests", usd(cost.per_1000_requests_usd)))
    if cost.setup is not None:
        rows.append(("setup USD", _priced(cost.setup)))
    if priced:
        rows += [("monthly USD", usd(cost.monthly_usd)), ("horizon USD", usd(cost.horizon_usd))]
    if cost.setup_seconds is not None:
        rows.append(("setup compute (cost)", seconds(cost.setup_seconds)))
    return rows


def _priced(entry: PricedRecord) -> str:
    """'$0.12 (tokens)', or 'unpriced' once (the basis of an unpriced figure says it again)."""
    if entry.usd is None:
        return "unpriced: set prices in task.yaml"
    return f"{usd(entry.usd)} ({shown(entry.basis)})"


def _candidates_table(measured: list[CandidateRecord]) -> Table:
    """Candidates are columns, as in the terminal summary, so many metrics stay readable."""
    names = list(dict.fromkeys(name for c in measured for name in c.metrics))
    rows = [[name, *(metric_cell(c.metrics.get(name)) for c in measured)] for name in names]
    usage_rows = (
        ("input tokens / request", "{:.0f}", [c.usage.input_tokens_per_request for c in measured]),
        ("output tokens / request", "{:.1f}",
         [c.usage.output_tokens_per_request for c in measured]),
        ("latency p50 (ms)", "{:.0f}", [c.usage.latency_p50_ms for c in measured]),
        ("latency p95 (ms)", "{:.0f}", [c.usage.latency_p95_ms for c in measured]),
    )  # fmt: skip
    for label, form, values in usage_rows:
        rows.append([label, *(_fmt(value, form) for value in values)])
    if any(c.label_scoring for c in measured):  # label tasks: how the labels were scored
        rows.append(["label scoring", *(_label_scoring(c) for c in measured)])
    rows.append(["setup (measured)", *(seconds(c.setup.seconds) for c in measured)])
    costs = [dict(_cost_rows(c.cost or CostRecord())) for c in measured]
    for label in dict.fromkeys(label for cost in costs for label in cost):
        rows.append([label, *(cost.get(label, "-") for cost in costs)])
    return Table(["", *(c.name for c in measured)], rows)


def _label_scoring(c: CandidateRecord) -> str:
    """'first-token', or 'first-token (3 parsed)' where some answers fell back."""
    others = {k: n for k, n in c.label_scoring_answers.items() if k != c.label_scoring}
    shown_others = ", ".join(f"{n} {k}" for k, n in others.items())
    return (c.label_scoring or "-") + (f" ({shown_others})" if shown_others else "")


def _fmt(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _break_even_table(entries: tuple[BreakEvenRecord, ...]) -> Table | None:
    if not entries:
        return None
    rows = []
    for e in entries:
        rows.append([
            shown(e.tuned), shown(e.prompt), shown(e.basis),
            "never" if e.requests is None else f"{e.requests:,.0f}",
            "never" if e.months is None else f"{e.months:.2g}",
            "yes" if e.within_horizon else "no", e.detail or "",
        ])  # fmt: skip
    headers = ["Fine-tuned", "Against", "Basis", "Requests", "Months", "Within horizon", "Detail"]
    return Table(headers, rows)


def _seed_table(measured: list[CandidateRecord], primary: str | None) -> Table:
    """Fine-tuning vs prompting, criterion by criterion: the framework's comparison, filled with
    this run's measurements instead of folklore."""
    rows = [
        ["Initial cost", *(_initial_cost(c) for c in measured)],
        ["Operating cost", *(_operating_cost(c) for c in measured)],
        ["Implementation time", *(_implementation(c) for c in measured)],
        ["Flexibility", *(_flexibility(c) for c in measured)],
        ["Consistency", *(_consistency(c) for c in measured)],
        ["Latest information", *(_latest(c, primary) for c in measured)],
        ["Technical difficulty", *(shown(c.effort) for c in measured)],
    ]
    return Table(["", *(c.name for c in measured)], rows)


def _initial_cost(c: CandidateRecord) -> str:
    priced = c.cost.setup.usd if c.cost and c.cost.setup else None
    if priced is not None:
        return usd(priced)
    return f"{seconds(setup_seconds(c))} of setup compute"


def _operating_cost(c: CandidateRecord) -> str:
    cost = c.cost
    if cost is not None and cost.per_1000_requests_usd is not None:
        return f"{usd(cost.per_1000_requests_usd)} per 1,000 requests"
    return f"{seconds(cost.compute_seconds_per_request if cost else None)} compute per request"


def _implementation(c: CandidateRecord) -> str:
    return f"{seconds(c.setup.seconds)} measured"


def _flexibility(c: CandidateRecord) -> str:
    if not c.trains:
        return "edit the prompt"
    return f"retrain: {seconds(setup_seconds(c))} measured"


def _consistency(c: CandidateRecord) -> str:
    extra = c.consistency
    validity = (extra.format_validity if extra else None) or c.metrics.get("format_validity")
    parts = [f"format validity {validity.value:.3f}"] if validity else []
    if extra and extra.spread:
        spread = extra.spread
        parts.append(
            f"across {shown(extra.redraws)} re-draws {spread.min:.3f}-{spread.max:.3f}"
            f" (sd {spread.std:.3f})"
        )
    if extra and extra.agreement:
        parts.append(f"agreement {extra.agreement.value:.3f}")
    flaky = c.flakiness
    if flaky and flaky.flaky_examples:
        parts.append(
            f"flaky on {flaky.flaky_examples.value:.3f} of examples over {flaky.repeats} samples"
        )
    return "; ".join(parts) or "-"


def _latest(c: CandidateRecord, primary: str | None) -> str:
    fresh = c.freshness.metrics if c.freshness else {}
    if not fresh:
        return "not probed"
    name = primary if primary in fresh else next(iter(fresh))
    text = f"after update: {name} {fresh[name].value:.3f}"
    if "stale_rate" in fresh:
        text += f", stale rate {fresh['stale_rate'].value:.3f}"
    return text


def _datasets_table(run: RunRecord) -> Table | None:
    """The primary metric of every candidate on every dataset, then the macro average."""
    metric = run.primary_metric()
    if not run.datasets or metric is None:
        return None
    names = list(dict.fromkeys(n for d in run.datasets for n in d.candidates))
    rows = [
        [f"{d.name} (n={d.data.test_examples})",
         *(metric_cell(d.candidates.get(n, {}).get(metric)) for n in names)]
        for d in run.datasets
    ]  # fmt: skip
    macro = run.macro or {}
    rows.append([f"macro {metric}", *(_fmt(macro.get(n, {}).get(metric), "{:.3f}") for n in names)])
    return Table(["dataset", *names], rows)


def _freshness_table(measured: list[CandidateRecord]) -> Table | None:
    probed = [(c.name, c.freshness) for c in measured if c.freshness]
    if not probed:
        return None
    blocks = [b for _, b in probed]
    rows = [
        ["questions", *(shown(b.examples) for b in blocks)],
        ["reads updated documents", *("yes" if b.retrieves_updated_documents else "no"
                                      for b in blocks)],
    ]  # fmt: skip
    for name in dict.fromkeys(name for b in blocks for name in b.metrics):
        rows.append([name, *(metric_cell(b.metrics.get(name)) for b in blocks)])
    return Table(["", *(name for name, _ in probed)], rows)
