"""The default run: the framework's four steps walked in order under a compute budget.

Step 1 prompts (zero-shot, few-shot, and optimized-prompt when it fits); step 2 adds RAG when the
task has documents; step 3 trains LoRA when the gap stays open (or when it could still win on
cost); step 4 trains the hybrid when RAG and LoRA each helped. Before each step its cost is
estimated from what has been measured so far (seconds per answer from a short warm-up on the
first test examples, training seconds per example from a short warm-up training) and the step is
fitted to what is left of the budget: fewer test examples (never below about +-0.1 of CI
half-width), a training subsample and one epoch, fewer optimizer trials. A step that cannot fit
is reported as not run, with its estimate and the command that runs it.

Every test example is asked of every candidate (paired comparisons need the same examples), so
the test sample is fitted once, before step 1, for the whole ladder.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from tunewise.core.catalog import (
    Strategy,
    first_in_ladder,
    ladder_strategies,
    strategy_named,
)
from tunewise.core.specs import CandidateSpec, FineTuningOptions
from tunewise.deciding.plan import LadderPlan
from tunewise.deciding.verdict import Recommendation
from tunewise.evaluation.sequential import (
    SequentialStop,
    bounded_mean_interval,
    look_confidence,
    looks,
    settled,
)
from tunewise.measuring.answer_scores import Scores
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.learning_curve import CurveFit, CurvePoint, Forecast
from tunewise.measuring.timing import WARM_UP_EXAMPLES, Timing
from tunewise.task.config import Task
from tunewise.task.data import Example

MIN_LADDER_TRAINING = 50  # fewer labelled examples: step 3 is not measured at all
_Z95 = 1.959964
_HALF_WIDTH = 0.1

Status = Literal["run", "skipped", "not run: budget", "stopped"]


def min_test_examples(p: float = 0.5) -> int:
    """Test examples for a 95% CI half-width of about 0.1 on a rate near p (worst case 0.5)."""
    return math.ceil(_Z95**2 * p * (1 - p) / _HALF_WIDTH**2)


@dataclass(frozen=True)
class Reduction:
    """One setting the budget shrank, and why."""

    step: int
    candidate: str
    setting: str  # test_examples | max_train_examples | epochs | trials
    before: int
    after: int
    reason: str

    def describe(self) -> str:
        change = f"{self.setting} {self.before} -> {self.after}"
        return f"step {self.step} {self.candidate}: {change} ({self.reason})"


@dataclass(frozen=True)
class StepOutcome:
    """What the ladder did at one step of the framework."""

    step: int
    title: str
    status: Status
    reason: str
    candidates: tuple[str, ...] = ()
    seconds: float = 0.0
    estimated_seconds: float | None = None
    command: str | None = None  # runs the step when the ladder did not


@dataclass(frozen=True)
class LadderForecast:
    """A fine-tuned candidate trained on a subsample to fit the budget, and what the learning
    curve through it and two smaller trainings forecasts with every training example."""

    candidate: str
    trained: int  # examples it trained on (validation slice included)
    measured: CurvePoint  # its quality there, with its interval
    forecast: Forecast  # at every training example, with the 80% interval of the refits
    seconds: float  # estimated compute of training on all of them and answering, here
    command: str  # the command that does it

    def to_dict(self) -> dict[str, Any]:
        return {
            "candidate": self.candidate,
            "trained": self.trained,
            "measured": self.measured.to_dict(),
            "forecast": self.forecast.to_dict(),
            "seconds": self.seconds,
            "command": self.command,
        }


@dataclass(frozen=True)
class LadderRecord:
    """The walk: budget, each step's outcome, every reduction, and why it stopped."""

    budget_seconds: float | None
    steps: list[StepOutcome]
    reductions: list[Reduction]
    stopped: str | None
    seconds: float  # wall time of the walk
    compute_seconds: float  # what the budget counted: the measurements' recorded compute
    forecast: LadderForecast | None = None
    plan: LadderPlan | None = None  # the plan it started from, checked against each step's cost

    def to_dict(self) -> dict[str, Any]:
        document = asdict(self)
        for step in document["steps"]:
            step["candidates"] = list(step["candidates"])
            step["seconds"] = round(step["seconds"], 2)
            if step["estimated_seconds"] is not None:
                step["estimated_seconds"] = round(step["estimated_seconds"], 1)
        document["seconds"] = round(self.seconds, 2)
        document["compute_seconds"] = round(self.compute_seconds, 2)
        if self.forecast is not None:
            document["forecast"] = self.forecast.to_dict()
        document["plan"] = self.plan.to_dict() if self.plan is not None else None
        return document


def strategies_for(name: str) -> str:
    """The strategies a command measures `name` with: the prompting ones the ladder walks (its
    rivals), the retrieval ones when it retrieves, the first fine-tuning one for a hybrid, and
    itself."""
    strategy = strategy_named(name)
    walked = [s.name for s in ladder_strategies("prompting") if s.ladder != "if-it-fits"]
    if strategy.retrieves:
        walked += [s.name for s in ladder_strategies("retrieval")][:1]
    if strategy.family == "hybrid":
        walked += [s.name for s in ladder_strategies("fine-tuning")][:1]
    return ",".join(dict.fromkeys([*walked, name]))


def verdict_text(recommendation: Recommendation, step: int) -> str:
    if recommendation.verdict == "meets-target" and recommendation.step <= step:
        return f"{recommendation.candidate} meets the target"
    best = recommendation.alternatives[0] if recommendation.alternatives else "nothing measured"
    return f"the target is missed; best so far {best}"


def compute_of(result: CandidateResult) -> float:
    """The compute a measurement recorded (what the budget counts)."""
    return result.compute_seconds


Measure = Callable[[CandidateSpec, str, Sequence[Example]], CandidateResult]
Decide = Callable[[Sequence[CandidateResult]], Recommendation]
TrainSeconds = Callable[[FineTuningOptions, str], tuple[float, int]]
"""Trains (or reuses) a short warm-up adapter; returns its training seconds and examples."""


@dataclass
class Ladder:
    """The walk's inputs (injected, so its control flow is tested without a model)."""

    task: Task
    test: list[Example]
    train_examples: int
    trainable: bool  # the model is a local transformers model (fine-tuning can run)
    measure: Measure
    decide: Decide
    train_seconds: TrainSeconds
    command: Callable[[str], str]  # strategies -> the command that runs them
    budget: float | None
    settings: Callable[[str], CandidateSpec]  # strategy -> the task's settings, else defaults
    clock: Callable[[], float] = time.perf_counter
    # The model is an endpoint whose service runs fine-tuning jobs (`fine_tuning: true`): the
    # strategies that train there (their record requires a fine-tuning-endpoint) can run.
    tunes_remotely: bool = False
    started: float = field(default=0.0)
    spent: float = 0.0  # recorded compute seconds of what the ladder measured
    results: list[CandidateResult] = field(default_factory=list)
    specs: list[CandidateSpec] = field(default_factory=list)
    steps: list[StepOutcome] = field(default_factory=list)
    reductions: list[Reduction] = field(default_factory=list)
    per_answer: dict[str, float] = field(default_factory=dict)  # strategy -> seconds per answer
    # Each answer's score on the target's metric, for sequential measurement; None: that
    # metric is not a mean of per-answer scores (macro F1, the judge), so each candidate
    # answers the whole sample.
    scores: Scores | None = None
    metric: str = "accuracy"  # the target's metric, whose interval sequential rounds report
    curve: CurveFit | None = None  # fitted when a subsampled training left more data open
    forecast: LadderForecast | None = None
    timing: Timing | None = None  # the plan's timing of this task (None: not planned)

    @property
    def baseline(self) -> str:
        """The strategy step 1 answers first: it times the answers every estimate starts from."""
        return first_in_ladder("prompting")

    # -- budget -------------------------------------------------------------------------------
    # The budget counts the compute each measurement records (answers, training, searches; a
    # cached answer keeps the time it took), not wall time: a rerun with warm caches walks the
    # same ladder and reaches the same numbers.
    def left(self) -> float:
        return math.inf if self.budget is None else self.budget - self.spent

    def fits(self, estimate: float) -> bool:
        return estimate <= self.left()

    def timed_answers(self, spec: CandidateSpec, name: str) -> float:
        """Seconds per answer on the first test examples (their answers land in the cache and
        are charged when the step asks them again)."""
        warm = self.measure(spec, name, self.test[:WARM_UP_EXAMPLES])
        seconds = warm.compute_seconds_per_request if warm.measured and warm.predictions else 0.0
        self.per_answer[spec.strategy] = seconds
        return seconds

    # -- running ------------------------------------------------------------------------------
    def run(self, spec: CandidateSpec, name: str) -> CandidateResult:
        """Measure a candidate on the test sample: in rounds that stop once its interval is
        clear of the target (when the ladder can score answers one by one), else at once."""
        planned = looks(len(self.test))
        if self.scores is None or self.task.target is None or len(planned) == 1:
            result = self.measure(spec, name, self.test)
            self.spent += compute_of(result)
        else:
            result = self._sequentially(spec, name, planned, self.task.target.min)
        self.results.append(result)
        self.specs.append(spec)
        return result

    def _sequentially(
        self, spec: CandidateSpec, name: str, planned: list[int], target: float
    ) -> CandidateResult:
        """Answer `planned[0]` examples, then double, until the target's metric is settled;
        each round charges only its new answers (the earlier ones come from the cache)."""
        assert self.scores is not None
        level = look_confidence(len(planned))
        charged, asked, per_answer = 0.0, 0, 0.0
        for n in planned:
            if asked and not self.fits((n - asked) * per_answer):
                reason = "budget spent"  # the interval holds at any look, this one included
                break
            result = self.measure(spec, name, self.test[:n])
            cost = compute_of(result)
            self.spent += cost - charged
            charged, asked = cost, n
            if not result.measured:
                return result
            per_answer = result.compute_seconds_per_request
            interval = bounded_mean_interval(self.scores(result, self.test[:n]), level)
            reason = settled(interval, target)
            if reason is not None:
                break
        stop = SequentialStop(
            asked, len(self.test), len(planned), level, reason or "sample exhausted"
        )
        metrics = {**result.metrics, self.metric: interval}
        return replace(result, metrics=metrics, sequential=stop)

    def measure_aside(self, spec: CandidateSpec, name: str, n: int) -> CandidateResult:
        """A measurement the ladder charges but does not count as a candidate (a learning
        curve's smaller training), on the first `n` test examples."""
        result = self.measure(spec, name, self.test[:n])
        self.spent += compute_of(result)
        return result

    def with_extras(self, spec: CandidateSpec) -> CandidateResult:
        """The last candidate measured again with `spec` (its extra measurements on) on the
        same examples: their answers are cached, so only the extras cost."""
        last = self.results[-1]
        n = last.sequential.n if last.sequential else len(self.test)
        again = self.measure(spec, last.name, self.test[:n])
        self.spent += compute_of(again) - compute_of(last)
        if not again.measured:
            return last
        kept = replace(again, metrics=last.metrics, sequential=last.sequential)
        self.results[-1], self.specs[-1] = kept, spec
        return kept

    def record(self, step: int, title: str, status: Status, reason: str, **extra: Any) -> None:
        self.steps.append(StepOutcome(step, title, status, reason, **extra))

    def reduce(self, step: int, candidate: str, setting: str, before: int, after: int) -> None:
        why = "to fit the budget"
        self.reductions.append(Reduction(step, candidate, setting, before, after, why))

    def decision(self) -> Recommendation:
        return self.decide([r for r in self.results if r.measured])

    def can_train(self, strategy: Strategy) -> bool:
        """Whether a training strategy can train for this model: on its endpoint's service
        when its record requires one, else here (local weights)."""
        return self.tunes_remotely if strategy.trains_remotely else self.trainable

    def measured(self, strategies: frozenset[str]) -> list[CandidateResult]:
        return [r for r in self.results if r.measured and r.strategy in strategies]
