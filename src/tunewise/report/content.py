"""What the report says, as plain strings and tables, shared by the HTML and Markdown renderers.

Nothing here escapes anything: each renderer escapes for its own format. Every optional block of
results.json (cost, break_even, consistency, learning_curve, freshness) may be absent or null.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tunewise.report.cells import Table, metric_cell, seconds, usd
from tunewise.report.confusions import Confusion, confusions
from tunewise.report.distill import DistillationSection, distillation_section
from tunewise.report.risks import check_lines, languages_table, repair_table
from tunewise.report.search import PromptSearch, prompt_searches
from tunewise.report.walk import NextAction, ladder_notes, ladder_table, next_action
from tunewise.report.worst import ErrorExample, worst_errors

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


def build_report(results: dict[str, Any], predictions: list[dict[str, Any]]) -> Report:
    """Everything both report formats show, in report order."""
    measured = measured_candidates(results)
    output_format = results.get("task", {}).get("output_format", "text")
    curve = results.get("learning_curve") or {}
    return Report(
        title=f"tunewise report: {results.get('task', {}).get('name', '?')}",
        facts=_facts(results),
        decision=_decision(results),
        candidates=_candidates_table(measured),
        skipped=[
            (c["name"], c.get("skipped_reason", ""))
            for c in results.get("candidates", [])
            if not _is_measured(c)
        ],
        break_even=_break_even_table(results.get("break_even") or []),
        seed=_seed_table(measured, primary_metric(results)),
        freshness=_freshness_table(measured),
        repair=repair_table(measured),
        checks=check_lines(results),
        languages=languages_table(results),
        datasets=_datasets_table(results),
        learning_curve=curve.get("summary"),
        errors=[(c["name"], worst_errors(output_format, c["name"], predictions)) for c in measured],
        searches=prompt_searches(measured),
        distillation=distillation_section(measured, primary_metric(results)),
        ladder=ladder_table(results),
        ladder_notes=ladder_notes(results),
        confusions=confusions(measured),
    )


def _is_measured(candidate: dict[str, Any]) -> bool:
    # Runs written before the status field existed had only measured candidates.
    default = "measured" if "metrics" in candidate else "skipped"
    return candidate.get("status", default) == "measured"


def measured_candidates(results: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in results.get("candidates", []) if _is_measured(c)]


def primary_metric(results: dict[str, Any]) -> str | None:
    """The target metric when the candidates report it, else the first metric measured."""
    measured = measured_candidates(results)
    names = list(dict.fromkeys(name for c in measured for name in c.get("metrics", {})))
    target = (results.get("task") or {}).get("target") or {}
    chosen = target.get("metric") or (results.get("recommendation") or {}).get("metric")
    return chosen if chosen in names else (names[0] if names else None)


def _facts(results: dict[str, Any]) -> list[tuple[str, str]]:
    data, machine = results.get("data", {}), results.get("machine", {})
    models = sorted({c["model"] for c in results.get("candidates", []) if c.get("model")})
    available = data.get("test_examples_available", data.get("test_examples"))
    hardware = [machine.get("platform"), f"{machine.get('cpus')} CPUs"]
    hardware += [
        f"Python {machine.get('python')}",
        machine.get("torch") and f"torch {machine['torch']}",
    ]
    return [
        ("Task", str(results.get("task", {}).get("name", "?"))),
        ("Run id", str(results.get("run_id", "?"))),
        ("Created", str(results.get("created_at", "?"))),
        ("Model(s)", ", ".join(models) or "-"),
        ("Seed", str(results.get("seed", "-"))),
        ("Data hash", str(data.get("hash", ""))[:12] or "-"),
        ("Test examples", f"{data.get('test_examples', '?')} (of {available} available)"),
        ("Train examples", str(data.get("train_examples", "?"))),
        ("Code version", str(results.get("code_version", "?"))),
        ("Machine", ", ".join(str(part) for part in hardware if part)),
    ]


def _decision(results: dict[str, Any]) -> Decision:
    rec = results.get("recommendation") or {}
    verdict = rec.get("verdict", "target-missed")
    gates = [
        [str(g.get("step", "")), g.get("question", ""), "yes" if g.get("passed") else "no",
         g.get("detail", "")]
        for g in rec.get("gates", [])
    ]  # fmt: skip
    return Decision(
        candidate=rec.get("candidate"),
        headline=HEADLINES.get(verdict, verdict),
        step=rec.get("step"),
        verdict=verdict,
        metric=rec.get("metric", ""),
        reasons=list(rec.get("reasons", [])),
        gates=Table(["Step", "Question", "Passed", "Detail"], gates),
        alternatives=list(rec.get("alternatives", [])),
        changes=list(rec.get("changes", [])),
        next_step=next_action(results),
        closest=None
        if rec.get("candidate") or not rec.get("closest")
        else f"{rec['closest']} (step {rec.get('closest_step')})",
    )


def _cost_rows(cost: dict[str, Any]) -> list[tuple[str, str]]:
    per = cost.get("per_request") or {}
    setup = cost.get("setup") or {}
    rows = [("compute s / request", seconds(cost.get("compute_seconds_per_request")))]
    if per:
        rows.append(("USD / request", _priced(per)))
    if "per_1000_requests_usd" in cost:
        rows.append(("USD / 1,000 requests", usd(cost.get("per_1000_requests_usd"))))
    if setup:
        rows.append(("setup USD", _priced(setup)))
    for key, label in (("monthly_usd", "monthly USD"), ("horizon_usd", "horizon USD")):
        if key in cost:
            rows.append((label, usd(cost.get(key))))
    if "setup_seconds" in cost:
        rows.append(("setup compute (cost)", seconds(cost.get("setup_seconds"))))
    return rows


def _priced(entry: dict[str, Any]) -> str:
    """'$0.12 (tokens)', or 'unpriced' once (the basis of an unpriced figure says it again)."""
    if entry.get("usd") is None:
        return "unpriced: set prices in task.yaml"
    return f"{usd(entry['usd'])} ({entry.get('basis', '?')})"


def _candidates_table(measured: list[dict[str, Any]]) -> Table:
    """Candidates are columns, as in the terminal summary, so many metrics stay readable."""
    names = list(dict.fromkeys(name for c in measured for name in c.get("metrics", {})))
    rows = [[name, *(metric_cell(c["metrics"].get(name)) for c in measured)] for name in names]
    usage_rows = (
        ("input tokens / request", "input_tokens_per_request", "{:.0f}"),
        ("output tokens / request", "output_tokens_per_request", "{:.1f}"),
        ("latency p50 (ms)", "latency_p50_ms", "{:.0f}"),
        ("latency p95 (ms)", "latency_p95_ms", "{:.0f}"),
    )
    for label, key, form in usage_rows:
        rows.append([label, *(_fmt(c.get("usage", {}).get(key), form) for c in measured)])
    rows.append(
        ["setup (measured)", *(seconds(c.get("setup", {}).get("seconds")) for c in measured)]
    )
    costs = [dict(_cost_rows(c.get("cost") or {})) for c in measured]
    for label in dict.fromkeys(label for cost in costs for label in cost):
        rows.append([label, *(cost.get(label, "-") for cost in costs)])
    return Table(["", *(c["name"] for c in measured)], rows)


def _fmt(value: float | None, form: str) -> str:
    return "-" if value is None else form.format(value)


def _break_even_table(entries: list[dict[str, Any]]) -> Table | None:
    if not entries:
        return None
    rows = []
    for e in entries:
        requests, months = e.get("requests"), e.get("months")
        rows.append([
            e.get("tuned", "?"), e.get("prompt", "?"), e.get("basis", "?"),
            "never" if requests is None else f"{requests:,.0f}",
            "never" if months is None else f"{months:.2g}",
            "yes" if e.get("within_horizon") else "no", e.get("detail", ""),
        ])  # fmt: skip
    headers = ["Fine-tuned", "Against", "Basis", "Requests", "Months", "Within horizon", "Detail"]
    return Table(headers, rows)


def _seed_table(measured: list[dict[str, Any]], primary: str | None) -> Table:
    """Fine-tuning vs prompting, criterion by criterion: the framework's comparison, filled with
    this run's measurements instead of folklore."""
    rows = [
        ["Initial cost", *(_initial_cost(c) for c in measured)],
        ["Operating cost", *(_operating_cost(c) for c in measured)],
        ["Implementation time", *(_implementation(c) for c in measured)],
        ["Flexibility", *(_flexibility(c) for c in measured)],
        ["Consistency", *(_consistency(c) for c in measured)],
        ["Latest information", *(_latest(c, primary) for c in measured)],
        ["Technical difficulty", *(c["effort"] for c in measured)],
    ]
    return Table(["", *(c["name"] for c in measured)], rows)


def _setup_seconds(c: dict[str, Any]) -> float | None:
    return (c.get("cost") or {}).get("setup_seconds", c.get("setup", {}).get("seconds"))


def _initial_cost(c: dict[str, Any]) -> str:
    priced = ((c.get("cost") or {}).get("setup") or {}).get("usd")
    if priced is not None:
        return usd(priced)
    return f"{seconds(_setup_seconds(c))} of setup compute"


def _operating_cost(c: dict[str, Any]) -> str:
    cost = c.get("cost") or {}
    if cost.get("per_1000_requests_usd") is not None:
        return f"{usd(cost['per_1000_requests_usd'])} per 1,000 requests"
    return f"{seconds(cost.get('compute_seconds_per_request'))} compute per request"


def _implementation(c: dict[str, Any]) -> str:
    return f"{seconds(c.get('setup', {}).get('seconds'))} measured"


def _flexibility(c: dict[str, Any]) -> str:
    if not c["trains"]:
        return "edit the prompt"
    return f"retrain: {seconds(_setup_seconds(c))} measured"


def _consistency(c: dict[str, Any]) -> str:
    extra = c.get("consistency") or {}
    validity = extra.get("format_validity") or c.get("metrics", {}).get("format_validity")
    parts = [f"format validity {validity['value']:.3f}"] if validity else []
    spread = extra.get("spread")
    if spread:
        parts.append(
            f"across {extra.get('redraws', '?')} re-draws {spread['min']:.3f}-{spread['max']:.3f}"
            f" (sd {spread['std']:.3f})"
        )
    if extra.get("agreement"):
        parts.append(f"agreement {extra['agreement']['value']:.3f}")
    flaky = c.get("flakiness")
    if flaky:
        parts.append(
            f"flaky on {flaky['flaky_examples']['value']:.3f} of examples over "
            f"{flaky['repeats']} samples"
        )
    return "; ".join(parts) or "-"


def _latest(c: dict[str, Any], primary: str | None) -> str:
    fresh = (c.get("freshness") or {}).get("metrics") or {}
    if not fresh:
        return "not probed"
    name = primary if primary in fresh else next(iter(fresh))
    text = f"after update: {name} {fresh[name]['value']:.3f}"
    if "stale_rate" in fresh:
        text += f", stale rate {fresh['stale_rate']['value']:.3f}"
    return text


def _datasets_table(results: dict[str, Any]) -> Table | None:
    """The primary metric of every candidate on every dataset, then the macro average."""
    datasets = results.get("datasets") or []
    metric = primary_metric(results)
    if not datasets or metric is None:
        return None
    names = list(dict.fromkeys(n for d in datasets for n in d["candidates"]))
    rows = [
        [f"{d['name']} (n={d['data']['test_examples']})",
         *(metric_cell(d["candidates"].get(n, {}).get(metric)) for n in names)]
        for d in datasets
    ]  # fmt: skip
    macro = results.get("macro") or {}
    rows.append([f"macro {metric}", *(_fmt(macro.get(n, {}).get(metric), "{:.3f}") for n in names)])
    return Table(["dataset", *names], rows)


def _freshness_table(measured: list[dict[str, Any]]) -> Table | None:
    probed = [c for c in measured if c.get("freshness")]
    if not probed:
        return None
    blocks = [c["freshness"] for c in probed]
    rows = [
        ["questions", *(str(b.get("examples", "?")) for b in blocks)],
        ["reads updated documents", *("yes" if b.get("retrieves_updated_documents") else "no"
                                      for b in blocks)],
    ]  # fmt: skip
    for name in dict.fromkeys(name for b in blocks for name in b.get("metrics", {})):
        rows.append([name, *(metric_cell(b["metrics"].get(name)) for b in blocks)])
    return Table(["", *(c["name"] for c in probed)], rows)
