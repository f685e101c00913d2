"""The report's distillation section: each student trained on a teacher's labels, next to the
same strategy trained on human labels and the prompting candidates that ran on the teacher's
model (the teacher itself), in one table."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.report.cells import Table, metric_cell, seconds, setup_seconds, shown, usd
from tunewise.schemas.run_candidate import CandidateRecord, DistillationRecord, MetricRecord

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
    measured: list[CandidateRecord], metric: str | None
) -> DistillationSection | None:
    """None when no candidate was distilled."""
    students = [c for c in measured if c.setup.distillation]
    if not students or metric is None:
        return None
    teachers = {_record(c).teacher for c in students}
    strategies = {c.strategy for c in students}
    bases = {_base(c) for c in students}
    human = [
        c
        for c in measured
        if c.trains and not c.setup.distillation and c.strategy in strategies and _base(c) in bases
    ]
    teacher_runs = [c for c in measured if not c.trains and c.model in teachers]
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


def _record(candidate: CandidateRecord) -> DistillationRecord:
    return candidate.setup.distillation or DistillationRecord()


def _base(candidate: CandidateRecord) -> str:
    """A fine-tuned candidate's base model ('BASE+lora:abc123' -> 'BASE')."""
    return (candidate.model or "").split("+", 1)[0]


def _row(c: CandidateRecord, role: str, metric: str) -> list[str]:
    record = c.setup.distillation
    training = c.setup.training or {}
    if record:
        kept = f"{shown(record.kept)} / {shown(record.asked)}"
        agreement = _agreement(record.agreement_with_human)
        needed = shown(record.human_labels)
    else:
        kept, agreement = "-", "-"
        needed = (
            str(training.get("examples", 0) + training.get("validation_examples", 0))
            if training
            else "-"
        )
    return [
        c.name,
        role,
        metric_cell(c.metrics.get(metric)),
        kept,
        agreement,
        needed,
        _setup_cost(c),
    ]


def _agreement(value: MetricRecord | None) -> str:
    return metric_cell(value) if value else "no human labels"


def _setup_cost(c: CandidateRecord) -> str:
    priced = c.cost.setup.usd if c.cost and c.cost.setup else None
    text = f"{seconds(setup_seconds(c))} compute"
    return f"{usd(priced)} ({text})" if priced is not None else text


def _summary(c: CandidateRecord) -> str:
    r = _record(c)
    prompt = shown(r.prompt)
    if prompt == "few-shot":
        prompt += f", {shown(r.human_labels)} human-labelled demos"
    paid = "tokens priced as setup" if r.remote else "compute counted as setup"
    return (
        f"{c.name}: the teacher {shown(r.teacher)} ({prompt}) labelled "
        f"{shown(r.asked)} inputs from {shown(r.inputs)}; kept {shown(r.kept)}, "
        f"dropped {shown(r.dropped_invalid)} invalid and "
        f"{shown(r.dropped_low_confidence)} under min_confidence "
        f"{shown(r.min_confidence, '0')}. {shown(r.requests)} requests "
        f"({shown(r.calls)} answered in this run), {seconds(r.seconds)}, "
        f"{shown(r.input_tokens)} input + {shown(r.output_tokens)} output tokens "
        f"({paid})."
    )
