"""The terminal summary of a run, rendered from results.json so `report` shows the same thing."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text


def _metric_cell(metric: dict[str, Any]) -> str:
    return f"{metric['value']:.3f} [{metric['ci_low']:.3f}, {metric['ci_high']:.3f}]"


def render_table(document: dict[str, Any]) -> Group:
    """Candidates with each metric (value and 95% CI), tokens and latency; then the decision."""
    candidates = document["candidates"]
    metric_names = list(candidates[0]["metrics"])
    data = document["data"]
    title = (
        f"{document['task']['name']}: {data['test_examples']} test examples, "
        f"{data['train_examples']} train, seed {document['seed']}"
    )
    table = Table(title=title, caption="metrics: value [95% bootstrap CI]", title_justify="left")
    table.add_column("candidate", style="bold")
    table.add_column("model")
    for name in metric_names:
        table.add_column(name.replace("_", " "), justify="right")
    for column in ("in tok/req", "out tok/req", "p50 ms", "p95 ms"):
        table.add_column(column, justify="right")
    recommended = document["recommendation"]["candidate"]
    for candidate in candidates:
        usage = candidate["usage"]
        marker = " *" if candidate["name"] == recommended else ""
        table.add_row(
            candidate["name"] + marker,
            candidate["model"],
            *(_metric_cell(candidate["metrics"][name]) for name in metric_names),
            f"{usage['input_tokens_per_request']:.0f}",
            f"{usage['output_tokens_per_request']:.1f}",
            f"{usage['latency_p50_ms']:.0f}",
            f"{usage['latency_p95_ms']:.0f}",
        )
    return Group(table, _decision(document["recommendation"]))


def _decision(recommendation: dict[str, Any]) -> Text:
    text = Text()
    chosen = recommendation["candidate"]
    if chosen:
        text.append(
            f"Recommendation (step {recommendation['step']}): {chosen}\n", style="bold green"
        )
    else:
        text.append("No candidate meets the target yet.\n", style="bold yellow")
    for reason in recommendation["reasons"]:
        text.append(f"  - {reason}\n")
    return text
