"""The validation and repair loop: an answer that breaks the output contract is sent back to
the model with the validator's reason, up to `max_repairs` times.

Repairs go through predict(), so they are batched, cached and resumable like first answers.
A repaired answer carries the tokens and time of every attempt, so the candidate's cost and
latency include what the repairs took; its first answer is kept to report validity before repair.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from tunewise.core.setup import Setup
from tunewise.core.specs import CandidateSpec
from tunewise.evaluation.validators import validate
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, predict
from tunewise.inference.predictor import Predictor, Request
from tunewise.inference.prompts import format_instruction
from tunewise.models.backend import Backend, Message
from tunewise.task.config import OutputFormat, Task
from tunewise.task.data import Example


def repairs_for(task: Task, spec: CandidateSpec) -> int:
    """Repair rounds for a candidate's answers; label scoring always yields a valid label."""
    if task.contract.output_format.type == "label":
        return 0
    return task.max_repairs if spec.max_repairs is None else spec.max_repairs


def repair_message(output_format: OutputFormat, reason: str) -> str:
    """The user turn that asks for a corrected answer. The system prompt already holds any JSON
    Schema, so the turn refers to it (about 400 tokens a round on address-extraction)."""
    again = format_instruction(output_format, schema_above=True)
    return f"That answer is not valid: {reason}. Answer the same request again. {again}"


@dataclass(frozen=True)
class RepairRecord:
    """What the loop did for one candidate's answers."""

    max_repairs: int
    invalid_before: int  # answers that failed validation before any repair
    repaired: int  # of those, valid after the loop
    requests: int  # repair requests sent (an answer may take several)
    input_tokens: int
    output_tokens: int
    seconds: float  # summed latency of the repair requests

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_repairs": self.max_repairs,
            "invalid_before": self.invalid_before,
            "repaired": self.repaired,
            "still_invalid": self.invalid_before - self.repaired,
            "requests": self.requests,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "seconds": round(self.seconds, 4),
        }


@dataclass
class _Conversations:
    """A predictor that asks each example's ongoing repair conversation."""

    name: str
    strategy: str
    backend: Backend
    conversations: dict[str, list[Message]]
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)

    def request(self, example: Example) -> Request:
        return Request(self.conversations[example.id])


def repair(
    predictor: Predictor,
    examples: Sequence[Example],
    predictions: Sequence[Prediction],
    output_format: OutputFormat,
    cache: ResponseCache,
    *,
    max_new_tokens: int,
    max_repairs: int,
    stage: Callable[[int], Callable[[int], None]] | None = None,
) -> tuple[list[Prediction], RepairRecord]:
    """Predictions with invalid answers re-asked, in the same order, and what that took.
    `stage`, when there is anything to repair, is called once with the most requests the loop
    can send (max_repairs per invalid answer) and returns the progress callback."""
    current = list(predictions)
    by_id = {e.id: e for e in examples}
    conversations: dict[str, list[Message]] = {}
    sent: list[Prediction] = []  # every repair answer, in order
    invalid_before = len(_failing(current, output_format))
    advance = stage(invalid_before * max_repairs) if stage and invalid_before else lambda n: None
    for _ in range(max_repairs):
        failing = _failing(current, output_format)
        if not failing:
            break
        for i, reason in failing:
            p = current[i]
            history = conversations.get(p.example_id)
            if history is None:
                history = predictor.request(by_id[p.example_id]).messages
            conversations[p.example_id] = _asked_again(history, p, reason, output_format)
        asked = _Conversations(predictor.name, predictor.strategy, predictor.backend, conversations)
        again = [by_id[current[i].example_id] for i, _ in failing]
        answers = predict(
            asked, again, output_format, cache, max_new_tokens=max_new_tokens, advance=advance
        )
        for (i, _), answer in zip(failing, answers, strict=True):
            current[i] = _merged(current[i], answer)
        sent.extend(answers)
    # Repaired answers are not asked again: the bar ends full, not at the requests it spared.
    advance(invalid_before * max_repairs - len(sent))
    repaired = invalid_before - len(_failing(current, output_format))
    return current, _record(max_repairs, invalid_before, repaired, sent)


def _failing(
    predictions: Sequence[Prediction], output_format: OutputFormat
) -> list[tuple[int, str]]:
    """(position, the validator's reason) of each answer that breaks the output contract."""
    return [
        (i, reason)
        for i, p in enumerate(predictions)
        if (reason := validate(output_format, p.output)) is not None
    ]


def _asked_again(
    history: list[Message], answer: Prediction, reason: str, output_format: OutputFormat
) -> list[Message]:
    """The conversation so far, the invalid answer, and the turn that asks for a repair."""
    return [
        *history,
        {"role": "assistant", "content": answer.output},
        {"role": "user", "content": repair_message(output_format, reason)},
    ]


def _record(
    max_repairs: int, invalid_before: int, repaired: int, sent: Sequence[Prediction]
) -> RepairRecord:
    return RepairRecord(
        max_repairs=max_repairs,
        invalid_before=invalid_before,
        repaired=repaired,
        requests=len(sent),
        input_tokens=int(sum(a.input_tokens for a in sent)),
        output_tokens=int(sum(a.output_tokens for a in sent)),
        seconds=float(sum(a.latency_ms / 1000 for a in sent)),
    )


def _merged(first: Prediction, retry: Prediction) -> Prediction:
    """The retry's answer with the cost of every attempt so far."""
    compute = None
    if first.compute_ms is not None and retry.compute_ms is not None:
        compute = first.compute_ms + retry.compute_ms
    return replace(
        first,
        output=retry.output,
        input_tokens=first.input_tokens + retry.input_tokens,
        output_tokens=first.output_tokens + retry.output_tokens,
        latency_ms=first.latency_ms + retry.latency_ms,
        compute_ms=compute,
        cached=first.cached and retry.cached,
        finish_reason=retry.finish_reason,
        tokens_estimated=first.tokens_estimated or retry.tokens_estimated,
        repairs=first.repairs + 1,
        first_output=first.output if first.first_output is None else first.first_output,
    )
