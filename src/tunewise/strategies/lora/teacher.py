"""Distillation: a teacher model labels inputs, and a lora or hybrid student trains on the labels.

The teacher answers with a prompting candidate of its own (the contract alone, or few-shot with
demos from the human-labelled train split, never the input being labelled) through predict() and
the response cache, so a re-run asks nothing twice and an interrupted one resumes. A label is
kept only when it passes the output format's validators and, for label tasks, when the teacher's
probability of it reaches `min_confidence`. The inputs are `data.unlabeled` when the task has
it, else the training inputs with their outputs taken away: the student never sees a human
answer to an input it is trained on. Where an input does have a human answer, the record says
how often the teacher agreed with it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from tunewise.core.progress import Progress, SilentProgress
from tunewise.core.specs import FineTuningOptions
from tunewise.errors import TunewiseError
from tunewise.evaluation.metrics import load_json
from tunewise.evaluation.stats import mean_with_ci
from tunewise.evaluation.validators import validate
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import PromptPredictor
from tunewise.models.backend import Backend
from tunewise.models.registry import load_backend
from tunewise.strategies.few_shot.demos import stratified_demos
from tunewise.task.config import OutputFormat, Task
from tunewise.task.data import Example, read_inputs, sample_examples

MIN_KEPT = 2  # the student's seeded train/validation split needs at least one of each
DROPPED_SHOWN = 20  # dropped labels listed by id in the record


@dataclass
class Labelled:
    """What the teacher's answers became: kept examples, and why the rest were dropped."""

    kept: list[Example] = field(default_factory=list)
    invalid: list[dict[str, str]] = field(default_factory=list)
    low_confidence: list[dict[str, str]] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)  # 1.0 where teacher == human (kept)


def teacher_labels(
    task: Task,
    spec: FineTuningOptions,
    train: Sequence[Example],
    student: Backend,
    name: str,
    progress: Progress | None = None,
) -> tuple[list[Example], dict[str, Any]]:
    """The inputs labelled by `spec.teacher` and filtered, plus the distillation record."""
    assert spec.teacher is not None
    progress = progress or SilentProgress()
    teacher = student if spec.teacher == student.spec else load_backend(spec.teacher, task.models)
    inputs, source = teacher_inputs(task, spec, train)
    # The teacher is asked with the outputs taken away; they are kept aside for agreement only.
    human = {e.id: e.output for e in inputs if e.output}
    asked = [replace(e, output="") for e in inputs]
    predictor = teacher_predictor(task, spec, train, teacher, name)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    try:
        answers = predict(
            predictor,
            asked,
            task.contract.output_format,
            cache,
            max_new_tokens=task.max_new_tokens or 64,
            advance=progress.stage(f"{name} teacher", len(asked)),
        )
    finally:
        cache.close()
    labelled = keep_labels(task.contract.output_format, asked, answers, spec.min_confidence, human)
    if len(labelled.kept) < MIN_KEPT:
        raise TunewiseError(
            f"candidate '{name}': the teacher {spec.teacher} gave {len(labelled.kept)} usable "
            f"labels of {len(asked)} ({len(labelled.invalid)} invalid, "
            f"{len(labelled.low_confidence)} under min_confidence {spec.min_confidence}); the "
            f"student needs at least {MIN_KEPT}: lower min_confidence or use a stronger teacher"
        )
    record = distillation_record(spec, teacher, source, answers, labelled, task.seed)
    return labelled.kept, record


def teacher_inputs(
    task: Task, spec: FineTuningOptions, train: Sequence[Example]
) -> tuple[list[Example], str]:
    """data.unlabeled when set, else the training inputs; a seeded sample of
    max_train_examples of them when that is set (the teacher labels no more than is trained)."""
    if task.data.unlabeled is not None:
        inputs = read_inputs(task.data.unlabeled, task.contract.output_format)
        source = f"data.unlabeled ({task.data.unlabeled.name})"
    else:
        inputs, source = list(train), "the training inputs (their outputs withheld)"
    if spec.max_train_examples:
        inputs = sample_examples(inputs, spec.max_train_examples, task.seed, stratify=False)
    return inputs, source


def teacher_predictor(
    task: Task, spec: FineTuningOptions, train: Sequence[Example], teacher: Backend, name: str
) -> PromptPredictor:
    """The teacher's prompting candidate: zero-shot, or few-shot with teacher_k stratified demos
    from the human train split; an input that is one of the demos gets the spare one instead."""
    if spec.teacher_prompt == "zero-shot":
        return PromptPredictor(f"{name} teacher", "zero-shot", teacher, task.contract, lambda _: ())
    k = min(spec.teacher_k, max(0, len(train) - 1))
    pool = stratified_demos(train, k + 1, task.seed)

    def choose(text: str) -> list[Example]:
        return [d for d in pool if d.input.strip() != text.strip()][:k]

    return PromptPredictor(f"{name} teacher", "few-shot", teacher, task.contract, choose)


def keep_labels(
    output_format: OutputFormat,
    asked: Sequence[Example],
    answers: Sequence[Prediction],
    min_confidence: float,
    human: dict[str, str],
) -> Labelled:
    """Keep the answers that pass the validators and the confidence threshold, as examples
    whose output is the teacher's (in the same canonical form as a training file's)."""
    out = Labelled()
    for example, answer in zip(asked, answers, strict=True):
        reason = validate(output_format, answer.output)
        if reason is not None:
            out.invalid.append({"id": example.id, "reason": reason})
            continue
        confidence = (answer.probabilities or {}).get(answer.output.strip())
        confident = confidence is not None and confidence >= min_confidence
        if output_format.type == "label" and min_confidence > 0 and not confident:
            shown = "none" if confidence is None else f"{confidence:.3f}"
            out.low_confidence.append({"id": example.id, "reason": f"confidence {shown}"})
            continue
        label = canonical(output_format, answer.output)
        out.kept.append(replace(example, output=label))
        if example.id in human:
            out.agreement.append(float(label == human[example.id]))
    return out


def canonical(output_format: OutputFormat, text: str) -> str:
    """A valid answer as a training file would hold it: JSON sorted and compact, else stripped."""
    if output_format.type == "json":
        return json.dumps(load_json(text), ensure_ascii=False, sort_keys=True)
    return text.strip()


def distillation_record(
    spec: FineTuningOptions,
    teacher: Backend,
    source: str,
    answers: Sequence[Prediction],
    labelled: Labelled,
    seed: int,
) -> dict[str, Any]:
    """What results.json keeps under setup.distillation."""
    demos = sorted({d for a in answers for d in a.demo_ids})
    agreement = None
    if labelled.agreement:
        agreement = mean_with_ci(np.array(labelled.agreement), seed=seed).to_dict()
    dropped = (labelled.invalid + labelled.low_confidence)[:DROPPED_SHOWN]
    seconds = sum((a.latency_ms if a.compute_ms is None else a.compute_ms) for a in answers)
    return {
        "teacher": teacher.spec,
        "remote": bool(getattr(teacher, "remote", False)),
        "prompt": spec.teacher_prompt,
        "k": spec.teacher_k if spec.teacher_prompt == "few-shot" else 0,
        "min_confidence": spec.min_confidence,
        "inputs": source,
        "asked": len(answers),
        "kept": len(labelled.kept),
        "dropped_invalid": len(labelled.invalid),
        "dropped_low_confidence": len(labelled.low_confidence),
        "dropped": dropped,
        "human_labels": len(demos),
        "demo_ids": demos,
        "agreement_with_human": agreement,
        "requests": len(answers),
        "calls": sum(not a.cached for a in answers),
        "seconds": round(seconds / 1000, 4),
        "input_tokens": sum(a.input_tokens for a in answers),
        "output_tokens": sum(a.output_tokens for a in answers),
    }
