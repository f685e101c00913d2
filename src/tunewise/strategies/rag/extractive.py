"""Extractive answering for rag and hybrid: the answer is copied from the retrieved passages
(models/spans.py), and the candidate abstains where it is less sure of its span than a
threshold calibrated on training questions.

`answer: auto` picks it for text tasks whose training answers are mostly verbatim in the
documents, the reading-comprehension case where a small model's free answers drift.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from tunewise.errors import CandidateSkipped
from tunewise.evaluation.metrics import normalize_answer, token_f1
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import predict
from tunewise.models.backend import Backend
from tunewise.task.config import Task
from tunewise.task.data import Example

if TYPE_CHECKING:
    from tunewise.core.progress import Progress
    from tunewise.retrieval.index import Index
    from tunewise.strategies.rag.retrieving import RagPredictor

MOSTLY_VERBATIM = 0.6  # auto: at least this share of training answers is a span of the documents


def verbatim_share(train: Sequence[Example], index: Index) -> float:
    """The share of training answers that occur in the documents, compared case- and
    whitespace-insensitively (0 when no example has an answer)."""
    corpus = "\n".join(" ".join(chunk.text.split()).casefold() for chunk in index.chunks)
    answers = [" ".join(e.output.split()).casefold() for e in train if e.output.strip()]
    if not answers:
        return 0.0
    return sum(answer in corpus for answer in answers) / len(answers)


def answer_mode(task: Task, requested: str, share: float, local: bool = True) -> str:
    """What `answer:` means for this task: auto resolves by the output type and the share, and
    to free generation on a model whose logits tunewise cannot mask (`local` False)."""
    if requested != "auto":
        return requested
    text = task.contract.output_format.type == "text"
    return "extractive" if text and local and share >= MOSTLY_VERBATIM else "free"


def abstention_threshold(
    confidences: Sequence[float], answered: Sequence[float], abstained: Sequence[float]
) -> float:
    """The confidence below which abstaining scores best on these examples: each example
    scores `answered[i]` when its span is kept and `abstained[i]` when it abstains. -inf (never
    abstain) unless abstaining somewhere strictly helps; ties go to the lower threshold."""
    best, best_total = -math.inf, sum(answered)
    for cut in sorted(set(confidences)):
        total = sum(
            a if c >= cut else b for c, a, b in zip(confidences, answered, abstained, strict=True)
        )
        if total > best_total + 1e-12:
            best, best_total = cut, total
    return best


def extractive(
    task: Task,
    predictor: RagPredictor,
    train: Sequence[Example],
    name: str,
    progress: Progress | None,
) -> RagPredictor:
    """The predictor answering by spans, with its abstention calibrated on a seeded sample of
    train (the calibration's compute is part of the setup)."""
    from tunewise.models.local import LocalModel
    from tunewise.models.spans import ExtractiveModel

    base: Backend = predictor.backend
    if not isinstance(base, LocalModel):
        raise CandidateSkipped(
            f"{name}: answer: extractive masks a local model's logits to copy a span; "
            f"'{base.spec}' is answered by a server (use answer: free)"
        )
    abstention = task.contract.output_format.abstention
    max_chars = getattr(task.contract.output_format, "max_chars", None)
    spans = replace(predictor, backend=ExtractiveModel(base, abstention, max_chars=max_chars))
    threshold, sample, seconds = -math.inf, [], 0.0
    if abstention and predictor.spec.calibration_examples:
        sample = random.Random(task.seed).sample(
            list(train), min(predictor.spec.calibration_examples, len(train))
        )
        cache = ResponseCache(tunewise_home() / "cache.sqlite")
        try:
            stage = progress.stage(f"{name} calibration", len(sample)) if progress else None
            answers = predict(
                spans, sample, task.contract.output_format, cache,
                max_new_tokens=task.max_new_tokens or 32,
                advance=stage or (lambda n: None),
            )  # fmt: skip
        finally:
            cache.close()
        # Measured compute, as a teacher's labelling is: the same whether or not it was cached.
        seconds = sum(a.compute_ms or a.latency_ms for a in answers) / 1000
        kept = [normalize_answer(a.output) != normalize_answer(abstention) for a in answers]
        confidence = [
            a.confidence if a.confidence is not None and keep else -math.inf
            for a, keep in zip(answers, kept, strict=True)
        ]
        threshold = abstention_threshold(
            confidence,
            [token_f1(a.output, e.output) for a, e in zip(answers, sample, strict=True)],
            [token_f1(abstention, e.output) for e in sample],
        )
    calibrated = ExtractiveModel(base, abstention, threshold, max_chars=max_chars)
    setup = replace(predictor.setup, seconds=predictor.setup.seconds + seconds)
    params = {
        **predictor.params,
        "abstain_below": None if threshold == -math.inf else round(threshold, 4),
        "calibration_examples": len(sample),
    }
    return replace(spans, backend=calibrated, params=params, setup=setup)
