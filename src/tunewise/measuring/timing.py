"""A short timing of the task's own examples on this machine, before anything is measured: a few
answers zero-shot and few-shot (the first loads the model, so it is not counted), the prompt
lengths of each way of answering, and a short warm-up training. `tunewise plan` and `tunewise
run` plan from it; the answers and the warm-up adapter land in the caches, so the run reuses
them."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cache
from statistics import fmean

from tunewise.core.catalog import first_in_ladder, ladder_strategies
from tunewise.core.specs import CandidateSpec
from tunewise.evaluation.sequential import FIRST_LOOK
from tunewise.measuring.candidate import CandidateResult
from tunewise.models.backend import Backend, Message
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example

WARM_UP_EXAMPLES = 8  # answers timed before a step; they are cached, so the step reuses them
LONGER_PROMPTS_TIMED = 2  # inputs asked zero-shot and few-shot alike: the price of a token
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
    output_tokens: float = 1.0  # mean tokens of a zero-shot answer (an endpoint prices them)
    # Reading alone (one forward pass, no answer generated) per prompt token; None: not timed
    # apart, where seconds_per_token is reading already (or the model does not train here).
    seconds_per_read_token: float | None = None

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
    deadline: float | None = None,
) -> Timing:
    """Time answers on the task's own inputs: the same few inputs zero-shot and with
    few-shot's longer prompts, in batches of the same width, price each prompt token (reading
    it); one batch of zero-shot answers as wide as the ladder's rounds then prices the rest of
    an answer (generating it). No training rate yet (`with_training_rate` adds it).

    `deadline` (a `time.perf_counter()` value): each part is asked only where the time left
    affords it at the cost per prompt token measured so far: the zero-shot pair (else the first
    answer prices every answer, its load included), then the few-shot pair (else every answer
    is priced per token); the wide batch narrows to what half the time left can answer, skipped
    below 2 answers (the pair prices an answer instead)."""
    baseline = settings(first_in_ladder("prompting"))
    few = settings(next(s.name for s in ladder_strategies("prompting") if s.ladder == "measured"))
    # Its first draw times it: re-draws are the ladder's to run.
    first_draw = few.model_copy(update={"redraws": 1}) if hasattr(few, "redraws") else few
    paired = timed_pair(test)
    wide = test[LONGER_PROMPTS_TIMED + 1 :][: answers_timed(task, backend)] or paired
    # Few-shot's prompt length, counted (not asked) where its answers are not measured.
    few_tokens = cache(lambda: _prompt_tokens(task, few, dataset, paired, backend))
    loaded = measure(baseline, baseline.strategy, test[:1])  # loads the model: not timed
    if deadline is not None and not _affords(deadline, loaded, _tokens(loaded), len(paired)):
        # Answers so long that even the pair does not fit: the first prices them, its load
        # included (an upper bound).
        return _timing(task, dataset, test, settings, few, few_tokens, loaded, None, loaded)
    short = measure(baseline, baseline.strategy, paired)
    longer = None
    if deadline is None or _affords(deadline, short, few_tokens()):
        longer = measure(first_draw, few.strategy, paired)
    if deadline is not None and short.predictions:
        affordable = (deadline - time.perf_counter()) / 2 / short.compute_seconds_per_request
        wide = wide[: max(0, int(affordable))]
    timed = measure(baseline, baseline.strategy, wide) if len(wide) >= 2 else short
    return _timing(task, dataset, test, settings, few, few_tokens, short, longer, timed)


def timed_pair(test: Sequence[Example]) -> Sequence[Example]:
    """The inputs asked zero-shot and few-shot alike (the first loads the model)."""
    return test[1 : LONGER_PROMPTS_TIMED + 1] or test[:1]


def _timing(
    task: Task,
    dataset: Dataset,
    test: Sequence[Example],
    settings: Callable[[str], CandidateSpec],
    few: CandidateSpec,
    few_tokens: Callable[[], float],
    short: CandidateResult,
    longer: CandidateResult | None,
    timed: CandidateResult,
) -> Timing:
    """The timing the measured answers give."""
    per_answer, per_token = _answer_line(short, longer, timed)
    return Timing(
        seconds_per_token=per_token,
        seconds_per_answer=per_answer,
        zero_shot_tokens=_tokens(timed),
        output_tokens=timed.usage.get("output_tokens_per_request", 1.0),
        few_shot_tokens=_tokens(longer) if longer is not None and longer.measured else few_tokens(),
        rag_tokens=_rag_tokens(task, settings),
        train_seconds_per_example=None,
        train_examples=len(dataset.train),
        test_examples=len(test),
        epochs=getattr(settings(first_in_ladder("fine-tuning")), "epochs", 1),
        redraws=getattr(few, "redraws", 1),
    )


def _tokens(result: CandidateResult) -> float:
    return result.usage.get("input_tokens_per_request", 0.0)


def answers_timed(task: Task, backend: Backend) -> int:
    """How many answers to time: one batch as the ladder's rounds will run it. Generating
    costs about as much per decoding step for 8 rows as for 24 on a small model, so a batch
    smaller than the first round's would price each answer several times too high. Labels are
    scored an input at a time, so a few of them time it."""
    if task.contract.output_format.type == "label":
        return WARM_UP_EXAMPLES
    return max(WARM_UP_EXAMPLES, min(FIRST_LOOK, backend.batch_size))


def with_training_rate(timing: Timing, warm_up: WarmUp, size: int = WARM_UP_TRAINING) -> Timing:
    """The timing with the first fine-tuning method's rate from its warm-up training of `size`
    examples (`warm_up` trains that many)."""
    seconds, examples = warm_up(first_in_ladder("fine-tuning"))
    rate = seconds / max(1, examples)
    return replace(timing, train_seconds_per_example=rate, warm_up_examples=size)


def untimed_training_rate(timing: Timing) -> float:
    """Seconds per training example before any training was timed: about three forward passes
    (forward, backward) over a zero-shot prompt and its answer, at the price of reading a
    token: never of generating one, which would price long answers many times too high."""
    per_token = timing.seconds_per_read_token or timing.seconds_per_token
    return 3 * per_token * (timing.zero_shot_tokens + timing.output_tokens)


def with_reading_rate(
    timing: Timing,
    task: Task,
    spec: CandidateSpec,
    dataset: Dataset,
    examples: Sequence[Example],
    backend: Backend,
    clock: Callable[[], float] = time.perf_counter,
) -> Timing:
    """The timing with reading priced apart where it was not (every answer priced per prompt
    token, generating included): one forward pass over a few zero-shot prompts, asking for a
    single token, after an untimed one. Where reading was priced apart it stands as is."""
    if timing.seconds_per_answer > 0 or not examples:
        return timing
    prompts = _requests(task, spec, dataset, examples, backend)
    backend.generate(prompts[:1], 1)  # loads the model where every answer came from the cache
    started = clock()
    backend.generate(prompts, 1)
    seconds = clock() - started
    tokens = sum(backend.count_tokens(messages) for messages in prompts)
    return replace(timing, seconds_per_read_token=seconds / max(tokens, 1))


def _affords(deadline: float, asked: CandidateResult, tokens: float, answers: int = 0) -> bool:
    """Whether the time left affords `answers` (default: as many as `asked`) with prompts of
    `tokens` tokens, at `asked`'s cost per prompt token (an upper bound where the prompts are
    longer: generating costs no more)."""
    if not asked.predictions:
        return True
    per_token = asked.compute_seconds_per_request / max(_tokens(asked), 1.0)
    needed = per_token * tokens * (answers or len(asked.predictions))
    return time.perf_counter() + needed <= deadline


def _answer_line(
    short: CandidateResult, long: CandidateResult | None, wide: CandidateResult
) -> tuple[float, float]:
    """(seconds per answer, seconds per prompt token): the token price from the same inputs
    asked with short and long prompts in equal batches, the rest of `wide`'s answers per
    answer; all per token where the longer prompts were not measured or did not cost more."""
    tokens = _tokens(wide)
    seconds = wide.compute_seconds_per_request if wide.predictions else 0.0
    proportional = (0.0, seconds / max(tokens, 1.0))
    if long is None or not (short.predictions and long.measured and long.predictions):
        return proportional
    more = _tokens(long) - _tokens(short)
    gained = long.compute_seconds_per_request - short.compute_seconds_per_request
    slope = gained / more if more > 0 else 0.0
    if slope <= 0 or seconds - slope * tokens < 0:
        return proportional
    return seconds - slope * tokens, slope


def _prompt_tokens(
    task: Task, spec: CandidateSpec, dataset: Dataset, asked: Sequence[Example], backend: Backend
) -> float:
    """Mean prompt tokens of a prompting strategy's requests for the timed inputs."""
    return fmean(backend.count_tokens(m) for m in _requests(task, spec, dataset, asked, backend))


def _requests(
    task: Task, spec: CandidateSpec, dataset: Dataset, asked: Sequence[Example], backend: Backend
) -> list[list[Message]]:
    """The conversations a prompting strategy sends for these inputs."""
    predictor = prepare_candidate(task, spec, train=dataset.train, backend=backend, name="plan")
    return [list(predictor.request(e).messages) for e in asked]


def _rag_tokens(task: Task, settings: Callable[[str], CandidateSpec]) -> float | None:
    """RAG's prompt: its token budget (passages fill it), None without documents."""
    if task.data.documents is None:
        return None
    return float(getattr(settings(first_in_ladder("retrieval")), "context_tokens", 0))
