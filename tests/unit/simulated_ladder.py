"""A simulated world for the ladder's control flow: each strategy has a quality and a cost per
answer, a fake clock advances by what each measurement would take; the decision is the real one."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from conftest import TEXT_TASK

from tunewise.core.setup import Setup, Training
from tunewise.core.specs import CandidateSpec, FineTuningOptions, RetrievalOptions
from tunewise.deciding.climb import walk
from tunewise.deciding.from_results import decide_from
from tunewise.deciding.ladder import Ladder, LadderRecord
from tunewise.evaluation import MetricValue
from tunewise.inference.predict import Prediction
from tunewise.inference.predictor import RetrievalUse
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.selection import ladder_settings, suggested_command
from tunewise.measuring.timing import Timing
from tunewise.run import RunOptions
from tunewise.task.config import Task
from tunewise.task.data import Dataset, Example
from tunewise.task.loading import load_task

LABELS = ("positive", "negative", "neutral")


@dataclass
class World:
    """What each strategy would score and cost; measurements advance `now`."""

    quality: dict[str, float]
    per_answer: dict[str, float] = field(default_factory=dict)  # seconds
    train_per_example: float = 0.5  # seconds per example and epoch
    now: float = 0.0
    asked: list[tuple[str, int, int | None, int]] = field(default_factory=list)
    metric: str = "accuracy"
    params: dict[str, dict[str, float]] = field(default_factory=dict)  # by strategy
    recall_at_1: float | None = None  # of RAG candidates without reranking (None: no gold ids)
    drawn: bool = False  # answers right with probability `quality`, for sequential measurement
    recall_at_5: float | None = None  # of retrieving candidates (None: not recorded)

    def clock(self) -> float:
        return self.now

    def measure(
        self, spec: CandidateSpec, name: str, examples: Sequence[Example]
    ) -> CandidateResult:
        seconds = self.per_answer.get(spec.strategy, 0.1)
        trained = None
        if isinstance(spec, FineTuningOptions):
            trained = spec.max_train_examples or 1000
            self.now += trained * spec.epochs * self.train_per_example
        self.now += seconds * len(examples)
        self.asked.append((name, len(examples), trained, getattr(spec, "epochs", 0)))
        value = self.quality.get(name, self.quality.get(spec.strategy, self.quality["few-shot"]))
        metric = MetricValue(value, value - 0.05, value + 0.05, len(examples))
        metrics = {self.metric: metric}
        if self.recall_at_1 is not None and getattr(spec, "top_k", None):
            recall = 1.0 if getattr(spec, "rerank", 0) else self.recall_at_1
            metrics["recall@1"] = MetricValue(recall, recall, recall, len(examples))
        if self.recall_at_5 is not None and getattr(spec, "top_k", None):
            found = self.recall_at_5
            metrics["recall@5"] = MetricValue(found, found, found, len(examples))
        predictions = [
            Prediction(name, e.id, self.answer(name, e, value), 50, 1, seconds * 1000, (), False,
                       "stop", compute_ms=seconds * 1000)
            for e in examples
        ]  # fmt: skip
        usage = {
            "input_tokens_per_request": 300.0 if spec.strategy == "few-shot" else 50.0,
            "output_tokens_per_request": 1.0,
            "latency_p50_ms": seconds * 1000,
            "latency_p95_ms": seconds * 1000,
        }
        training = (trained or 0) * getattr(spec, "epochs", 0) * self.train_per_example
        setup = Setup(
            seconds=training,
            training=Training(seconds=training, examples=trained or 0, validation_examples=0),
        )
        params = {"train_examples": trained or 0}
        retrieval = None
        if isinstance(spec, RetrievalOptions):  # what a retrieving predictor reports, typed
            verbatim = self.params.get(spec.strategy, {}).get("verbatim_answers", 0.0)
            retrieval = RetrievalUse(spec.answer, spec.rerank, verbatim)
        return CandidateResult(
            name, spec.strategy, "m", "f", params,
            metrics, usage, setup if trained else Setup(), predictions, retrieval=retrieval,
        )  # fmt: skip

    def answer(self, name: str, example: Example, quality: float) -> str:
        """Right with probability `quality` (seeded by candidate and example) when answers are
        drawn, else always the reference."""
        if not self.drawn:
            return example.output
        draw = int(hashlib.sha256(f"{name}/{example.id}".encode()).hexdigest()[:8], 16) / 16**8
        return example.output if draw < quality else "wrong"

    def train_seconds(self, spec: FineTuningOptions, name: str) -> tuple[float, int]:
        examples = spec.max_train_examples or 0
        self.now += examples * self.train_per_example
        return examples * self.train_per_example, examples


def examples(n: int, prefix: str) -> list[Example]:
    return [Example(f"{prefix}-{i}", f"text {i}", LABELS[i % 3], f"x:{i}") for i in range(n)]


def with_documents(task: Task, tmp_path: Path) -> Task:
    return task.model_copy(update={"data": task.data.model_copy(update={"documents": tmp_path})})


# A question-answering task whose retrieval finds the documents but whose small model cannot
# read them: closed-book LoRA cannot know the facts, the hybrid (a trained reader) can.
READER_QUALITY = {"zero-shot": 0.1, "few-shot": 0.12, "rag": 0.05, "lora": 0.08, "hybrid": 0.6}


def qa_task(tmp_path: Path) -> Task:
    """A generated-answer task (token F1) with documents."""
    (tmp_path / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
    return with_documents(load_task(tmp_path / "task.yaml"), tmp_path)


def climb(
    task: Task,
    world: World,
    *,
    budget: float | None = None,
    train: int = 1000,
    test: int = 300,
    trainable: bool = True,
    timing: Timing | None = None,
) -> tuple[Ladder, LadderRecord]:
    dataset = Dataset(examples(train, "train"), examples(test, "test"), "file", [])
    options = RunOptions(budget=budget)
    ladder = Ladder(
        task=task,
        test=dataset.test,
        train_examples=train,
        trainable=trainable,
        measure=world.measure,
        decide=lambda measured: decide_from(task, dataset, measured),
        train_seconds=world.train_seconds,
        command=lambda strategies: suggested_command(options, strategies),
        budget=budget,
        settings=ladder_settings(task),
        clock=world.clock,
        scores=right_answers if world.drawn else None,
        timing=timing,
    )
    return ladder, walk(ladder)


def right_answers(result: CandidateResult, asked: Sequence[Example]) -> list[float]:
    gold = {e.id: e.output for e in asked}
    return [float(p.output == gold[p.example_id]) for p in result.predictions]


def statuses(record: LadderRecord) -> dict[int, str]:
    """Each step's status (step 1's: its prompting candidates', not the optional search's)."""
    return {s.step: s.status for s in record.steps if s.title != "optimized prompt"}
