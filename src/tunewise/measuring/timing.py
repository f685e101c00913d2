"""A short timing of the task's own examples on this machine, before anything is measured: a few
zero-shot answers (the first one loads the model, so it is not counted), the prompt lengths of
each way of answering, and a short warm-up training. `tunewise plan` and `tunewise run` plan
from it; the answers and the warm-up adapter land in the caches, so the run reuses them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from statistics import fmean

from tunewise.core.catalog import first_in_ladder, ladder_strategies
from tunewise.core.specs import CandidateSpec
from tunewise.measuring.candidate import CandidateResult
from tunewise.models.backend import Backend
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example

WARM_UP_EXAMPLES = 8  # answers timed before a step; they are cached, so the step reuses them
LONGER_PROMPTS_TIMED = 2  # few-shot answers timed beside them (cached too)
WARM_UP_TRAINING = 40  # examples of the short training that times a step 3 or 4
MIN_WARM_UP_TRAINING = 16  # its fewest, where a tight budget cannot spare 40 (four steps)

Measure = Callable[[CandidateSpec, str, Sequence[Example]], CandidateResult]
WarmUp = Callable[[str], tuple[float, int]]  # strategy -> (training seconds, examples x epochs)


@dataclass(frozen=True)
class Timing:
    """What a short timing measured on the task's own examples."""

    seconds_per_token: float  # answering compute per prompt token
    zero_shot_tokens: float  # mean prompt tokens of each way of answering
    few_shot_tokens: float
    rag_tokens: float | None  # None: the task has no documents
    train_seconds_per_example: float | None  # None: fine-tuning cannot run here
    train_examples: int
    test_examples: int
    epochs: int = 2  # the fine-tuning candidate's epochs
    redraws: int = 3  # few-shot's demo draws
    warm_up_examples: int = WARM_UP_TRAINING  # the warm-up training's size
    seconds_per_answer: float = 0.0  # and per answer whatever its prompt (generating it)

    def answers(self, tokens: float, n: int) -> float:
        """Compute for n answers to prompts of `tokens` tokens."""
        return (self.seconds_per_answer + self.seconds_per_token * tokens) * n


def warm_up_spec(spec: CandidateSpec, examples: int = WARM_UP_TRAINING) -> CandidateSpec:
    """The short training that times a training method: its settings, on a few examples for
    one epoch (so the adapter is also a learning-curve point of those settings)."""
    return spec.model_copy(update={"max_train_examples": examples, "epochs": 1})


def time_answers(
    task: Task,
    dataset: Dataset,
    test: Sequence[Example],
    settings: Callable[[str], CandidateSpec],
    *,
    backend: Backend,
    measure: Measure,
) -> Timing:
    """Time answers on the task's own inputs, zero-shot's and a few of few-shot's longer
    prompts: a line through the two splits each answer's compute into a part per prompt token
    (reading it) and a part per answer (generating it). No training rate yet
    (`with_training_rate` adds it)."""
    baseline = settings(first_in_ladder("prompting"))
    # One answer first loads the model; the next ones time answering alone.
    for asked in (test[:1], test[1 : WARM_UP_EXAMPLES + 1] or test[:1]):
        timed = measure(baseline, baseline.strategy, asked)
    tokens = timed.usage.get("input_tokens_per_request", 0.0)
    few = settings(next(s.name for s in ladder_strategies("prompting") if s.ladder == "measured"))
    longer = measure(few, few.strategy, asked[:LONGER_PROMPTS_TIMED])
    per_answer, per_token = _answer_line(timed, longer)
    return Timing(
        seconds_per_token=per_token,
        seconds_per_answer=per_answer,
        zero_shot_tokens=tokens,
        few_shot_tokens=(
            longer.usage["input_tokens_per_request"]
            if longer.measured
            else _prompt_tokens(task, few, dataset, asked, backend)
        ),
        rag_tokens=_rag_tokens(task, settings),
        train_seconds_per_example=None,
        train_examples=len(dataset.train),
        test_examples=len(test),
        epochs=getattr(settings(first_in_ladder("fine-tuning")), "epochs", 1),
        redraws=getattr(few, "redraws", 1),
    )


def with_training_rate(timing: Timing, warm_up: WarmUp, size: int = WARM_UP_TRAINING) -> Timing:
    """The timing with the first fine-tuning method's rate from its warm-up training of `size`
    examples (`warm_up` trains that many)."""
    seconds, examples = warm_up(first_in_ladder("fine-tuning"))
    rate = seconds / max(1, examples)
    return replace(timing, train_seconds_per_example=rate, warm_up_examples=size)


def _answer_line(short: CandidateResult, long: CandidateResult) -> tuple[float, float]:
    """(seconds per answer, seconds per prompt token) through the two measurements; all per
    token where the longer prompts were not measured or did not cost more."""
    tokens = short.usage.get("input_tokens_per_request", 0.0)
    seconds = short.compute_seconds_per_request if short.predictions else 0.0
    proportional = (0.0, seconds / max(tokens, 1.0))
    if not long.measured or not long.predictions:
        return proportional
    more = long.usage.get("input_tokens_per_request", 0.0) - tokens
    slope = (long.compute_seconds_per_request - seconds) / more if more > 0 else 0.0
    if slope <= 0 or seconds - slope * tokens < 0:
        return proportional
    return seconds - slope * tokens, slope


def _prompt_tokens(
    task: Task, spec: CandidateSpec, dataset: Dataset, asked: Sequence[Example], backend: Backend
) -> float:
    """Mean prompt tokens of a prompting strategy's requests for the timed inputs."""
    predictor = prepare_candidate(task, spec, train=dataset.train, backend=backend, name="plan")
    return fmean(backend.count_tokens(predictor.request(e).messages) for e in asked)


def _rag_tokens(task: Task, settings: Callable[[str], CandidateSpec]) -> float | None:
    """RAG's prompt: its token budget (passages fill it), None without documents."""
    if task.data.documents is None:
        return None
    return float(getattr(settings(first_in_ladder("retrieval")), "context_tokens", 0))
