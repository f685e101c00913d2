"""The report's distillation section: each student trained on a teacher's labels, next to the
same strategy trained on human labels and the prompting candidates that ran on the teacher's
model (the teacher itself), in one table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunewise.report.cells import Table, metric_cell, seconds, usd

DISTILLATION_NOTE = (
    "A distilled student trains on a teacher model's labels (the labels that pass the output "
    "format's validators and, for labels, the confidence threshold); it is compared with the "
    "same strategy trained on human labels and with the teacher answering by prompting. Setup "
    "cost includes the teacher's labelling; the human labels a student needed are the teacher's "
    "demonstrations."
)


@dataclass(frozen=True)
class DistillationSection:
    summaries: list[str]  # one line per student: what the teacher did
    table: Table
    note: str = DISTILLATION_NOTE


def distillation_section(
    measured: list[dict[str, Any]], metric: str | None
) -> DistillationSection | None:
    """None when no candidate was distilled."""
    students = [c for c in measured if _record(c)]
    if not students or metric is None:
        return None
    teachers = {_record(c)["teacher"] for c in students}
    strategies = {c["strategy"] for c in students}
    bases = {_base(c) for c in students}
    human = [
        c
        for c in measured
        if c["trains"] and not _record(c) and c["strategy"] in strategies and _base(c) in bases
    ]
    teacher_runs = [c for c in measured if not c["trains"] and c["model"] in teachers]
    rows = [_row(c, "student, teacher labels", metric) for c in students]
    rows += [_row(c, "student, human labels", metric) for c in human]
    rows += [_row(c, "teacher, prompting", metric) for c in teacher_runs]
    headers = [
        "Candidate",
        "Role",
        metric,
        "Labels kept / asked",
        "Teacher agrees with human",
        "Human labels needed",
        "Setup cost",
    ]
    return DistillationSection([_summary(c) for c in students], Table(headers, rows))


def _record(candidate: dict[str, Any]) -> dict[str, Any]:
    return (candidate.get("setup") or {}).get("distillation") or {}


def _base(candidate: dict[str, Any]) -> str:
    """A fine-tuned candidate's base model ('BASE+lora:abc123' -> 'BASE')."""
    return str(candidate.get("model", "")).split("+", 1)[0]


def _row(c: dict[str, Any], role: str, metric: str) -> list[str]:
    record = _record(c)
    training = (c.get("setup") or {}).get("training") or {}
    if record:
        kept = f"{record.get('kept', '?')} / {record.get('asked', '?')}"
        agreement = _agreement(record.get("agreement_with_human"))
        needed = str(record.get("human_labels", "?"))
    else:
        kept, agreement = "-", "-"
        needed = (
            str(training.get("examples", 0) + training.get("validation_examples", 0))
            if training
            else "-"
        )
    return [
        c["name"],
        role,
        metric_cell((c.get("metrics") or {}).get(metric)),
        kept,
        agreement,
        needed,
        _setup_cost(c),
    ]


def _agreement(value: dict[str, Any] | None) -> str:
    return metric_cell(value) if value else "no human labels"


def _setup_cost(c: dict[str, Any]) -> str:
    cost = c.get("cost") or {}
    priced = (cost.get("setup") or {}).get("usd")
    compute = cost.get("setup_seconds", (c.get("setup") or {}).get("seconds"))
    text = f"{seconds(compute)} compute"
    return f"{usd(priced)} ({text})" if priced is not None else text


def _summary(c: dict[str, Any]) -> str:
    r = _record(c)
    prompt = r.get("prompt", "?")
    if prompt == "few-shot":
        prompt += f", {r.get('human_labels', '?')} human-labelled demos"
    paid = "tokens priced as setup" if r.get("remote") else "compute counted as setup"
    return (
        f"{c['name']}: the teacher {r.get('teacher', '?')} ({prompt}) labelled "
        f"{r.get('asked', '?')} inputs from {r.get('inputs', '?')}; kept {r.get('kept', '?')}, "
        f"dropped {r.get('dropped_invalid', '?')} invalid and "
        f"{r.get('dropped_low_confidence', '?')} under min_confidence "
        f"{r.get('min_confidence', 0)}. {r.get('requests', '?')} requests "
        f"({r.get('calls', '?')} answered in this run), {seconds(r.get('seconds'))}, "
        f"{r.get('input_tokens', '?')} input + {r.get('output_tokens', '?')} output tokens "
        f"({paid})."
    )
