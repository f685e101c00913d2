"""The terminal summary of a run, rendered from results.json so `report` shows the same thing."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

USAGE_ROWS = (
    ("input tokens / request", "input_tokens_per_request", "{:.0f}"),
    ("output tokens / request", "output_tokens_per_request", "{:.1f}"),
    ("latency p50 (ms)", "latency_p50_ms", "{:.0f}"),
    ("latency p95 (ms)", "latency_p95_ms", "{:.0f}"),
)


COST_ROWS = (
    ("$ / 1,000 requests", lambda cost: cost["per_1000_requests_usd"]),
    ("setup $", lambda cost: cost["setup"]["usd"]),
    ("$ over the horizon", lambda cost: cost["horizon_usd"]),
)


def _consistency_cell(consistency: dict[str, Any] | None) -> str:
    """'0.62-0.68 over 3, 85% alike': the metric's range across draws, and answer agreement."""
    if not consistency:
        return "-"
    spread = consistency["spread"]
    return (
        f"{spread['min']:.3f}-{spread['max']:.3f} over {consistency['redraws']}, "
        f"{consistency['agreement']['value']:.0%} alike"
    )


def _flaky_cell(flakiness: dict[str, Any] | None) -> str:
    if not flakiness:
        return "-"
    return f"{_metric_cell(flakiness['flaky_examples'])} ({flakiness['repeats']} samples)"


def _metric_cell(metric: dict[str, Any]) -> str:
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def _dataset_rows(table: Table, document: dict[str, Any], names: list[str]) -> None:
    """With several datasets: the primary metric on each other dataset, then the macro mean."""
    datasets = document.get("datasets") or []
    metric = document["recommendation"]["metric"]
    for dataset in datasets[1:]:  # the first is the main dataset, shown above
        scores = dataset["candidates"]
        cells = [
            _metric_cell(scores[n][metric]) if metric in scores.get(n, {}) else "-" for n in names
        ]
        table.add_row(f"{metric.replace('_', ' ')} on {dataset['name']}", *cells)
    if datasets:
        macro = document.get("macro") or {}
        cells = [f"{macro[n][metric]:.3f}" if metric in macro.get(n, {}) else "-" for n in names]
        table.add_row(f"macro {metric.replace('_', ' ')}", *cells)


def render_table(document: dict[str, Any]) -> Group:
    """One column per candidate: each metric (value and 95% CI), tokens, latency; then the
    decision. Candidates are columns so the table stays readable in a narrow terminal."""
    candidates = [c for c in document["candidates"] if c["status"] == "measured"]
    skipped = [c for c in document["candidates"] if c["status"] != "measured"]
    data = document["data"]
    models = sorted({c["model"] for c in candidates})
    title = (
        f"{document['task']['name']}: {data['test_examples']} test examples, "
        f"{data['train_examples']} train, seed {document['seed']}, model {', '.join(models)}"
    )
    table = Table(title=title, caption="metric: value [95% bootstrap CI], n = test examples")
    table.add_column("")
    recommended = document["recommendation"]["candidate"]
    for candidate in candidates:
        marked = candidate["name"] == recommended
        table.add_column(candidate["name"] + (" *" if marked else ""), justify="right")
    # Retrieval metrics exist only for retrieving candidates: rows are the union, "-" elsewhere.
    names = dict.fromkeys(name for c in candidates for name in c["metrics"])
    for name in names:
        cells = [
            _metric_cell(c["metrics"][name]) if name in c["metrics"] else "-" for c in candidates
        ]
        table.add_row(name.replace("_", " "), *cells)
    fresh = [c.get("freshness") or {"metrics": {}} for c in candidates]
    for name in dict.fromkeys(name for f in fresh for name in f["metrics"]):
        cells = [_metric_cell(f["metrics"][name]) if name in f["metrics"] else "-" for f in fresh]
        table.add_row(f"after update: {name.replace('_', ' ')}", *cells)
    _dataset_rows(table, document, [c["name"] for c in candidates])
    for label, key, form in USAGE_ROWS:
        table.add_row(label, *(form.format(c["usage"][key]) for c in candidates))
    if any(c.get("consistency") for c in candidates):
        table.add_row(
            "demo re-draws", *(_consistency_cell(c.get("consistency")) for c in candidates)
        )
    if any(c.get("flakiness") for c in candidates):
        table.add_row("flaky examples", *(_flaky_cell(c.get("flakiness")) for c in candidates))
    table.add_row("setup (s)", *(f"{c['cost']['setup_seconds']:.0f}" for c in candidates))
    priced = any(c["cost"]["per_request"]["usd"] is not None for c in candidates)
    for label, cell in COST_ROWS if priced else ():  # dollars only once something has a price
        values = [cell(c["cost"]) for c in candidates]
        table.add_row(label, *("-" if v is None else f"{v:,.4g}" for v in values))
    notes = Text("".join(f"{c['name']}: skipped, {c['skipped_reason']}\n" for c in skipped))
    for candidate in candidates:
        training = candidate["setup"].get("training")
        if training:
            notes.append(_training_line(candidate["name"], training))
    if document.get("judge"):
        notes.append(_judge_line(document["judge"]))
    return Group(
        table, notes, _ladder(document.get("ladder")), _decision(document["recommendation"])
    )


def _ladder(ladder: dict[str, Any] | None) -> Text:
    """The walk, one line per step; each reduction the budget made; the commands left out."""
    text = Text()
    if not ladder:
        return text
    budget = ladder["budget_seconds"]
    limit = "" if budget is None else f" of its {budget / 60:.1f} min budget"
    charged = f"{ladder['compute_seconds'] / 60:.1f} min of compute{limit}"
    text.append(f"The ladder ({charged}; {ladder['seconds'] / 60:.1f} min here):\n", style="bold")
    for step in ladder["steps"]:
        ran = f", {step['seconds']:.0f} s" if step["status"] == "run" else ""
        text.append(f"  {step['step']}. {step['title']}: {step['status']}{ran}: {step['reason']}\n")
        if step["command"] and step["status"] != "skipped":
            text.append(f"     run it: {step['command']}\n")
    for cut in ladder["reductions"]:
        text.append(
            f"  reduced to fit: step {cut['step']} {cut['candidate']} {cut['setting']} "
            f"{cut['before']} -> {cut['after']}\n"
        )
    if ladder["stopped"]:
        text.append(f"  stopped: {ladder['stopped']}\n")
    return text


def _training_line(name: str, training: dict[str, Any]) -> str:
    source = "reused from the cache" if training.get("cached") else "trained"
    flag = "; validation loss rose: overfitting" if training.get("overfitting") else ""
    return (
        f"{name}: {source}, {training['examples']} examples, {training['steps']} steps, "
        f"{training['seconds']:.0f} s, best validation loss {training['best_validation_loss']}"
        f"{flag}\n"
    )


def _judge_line(judge: dict[str, Any]) -> str:
    """Who judged, what it cost in all, and how far its grades can be trusted."""
    usage, usd = judge["usage"], judge["cost"]["usd"]
    price = "" if usd is None else f", ${usd:.4g}"
    line = (
        f"judge: {judge['model']} ({judge['mode']}), {usage['requests']} verdicts, "
        f"{usage['calls']} calls, {usage['input_tokens'] + usage['output_tokens']:,} tokens, "
        f"{usage['seconds']:.0f} s{price}"
    )
    if judge["calibration"]:
        rho = judge["calibration"]["spearman"]
        line += (
            f"; agreement with human grades: Spearman {rho['value']:.2f} "
            f"[{rho['ci_low']:.2f}, {rho['ci_high']:.2f}], n={rho['n']}"
        )
    elif judge["self_consistency"]:
        agreement = judge["self_consistency"]["agreement"]
        line += (
            f"; self-consistency over two samplings {agreement['value']:.2f} "
            f"[{agreement['ci_low']:.2f}, {agreement['ci_high']:.2f}]"
        )
    return line + "\n"


def _decision(recommendation: dict[str, Any]) -> Text:
    text = Text()
    chosen = recommendation["candidate"]
    headline = {
        "blocked": "A candidate meets the target, but a gate of step 3 blocks it:",
        "target-missed": "No candidate meets the target yet.",
    }
    if chosen:
        step = recommendation["step"]
        text.append(f"Recommendation (step {step}): {chosen}\n", style="bold green")
    else:
        text.append(headline[recommendation["verdict"]] + "\n", style="bold yellow")
        if recommendation.get("closest"):
            text.append(
                f"Closest: {recommendation['closest']} (step {recommendation['closest_step']})\n"
            )
    for reason in recommendation["reasons"]:
        text.append(f"  - {reason}\n")
    changes = recommendation.get("changes") or []
    if changes:
        text.append("What would change it:\n")
    for change in changes:
        text.append(f"  - {change}\n")
    following = recommendation.get("next_step")
    if following:
        text.append("Next step: ", style="bold")
        text.append(following["action"] + "\n")
        if following["command"]:
            text.append(f"  {following['command']}\n", style="cyan")
    return text
