"""The model judge at run time: its verdicts go through predict(), so they are cached, retried
and batched like every answer, and their tokens and seconds are counted per candidate.

Pairwise, the baseline's answers are remembered as it is measured; a candidate measured before
its baseline cannot be judged and says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunewise.core.catalog import first_in_ladder
from tunewise.core.costs import CostInputs, PriceList, request_cost
from tunewise.core.setup import Setup
from tunewise.errors import DataError, TunewiseError
from tunewise.evaluation.judging import (
    FIRST,
    SECOND,
    grades,
    pairwise_prompt,
    pairwise_score,
    pairwise_system,
    pointwise_prompt,
    pointwise_score,
    pointwise_system,
    position_stats,
    rubric,
    sampled_verdicts,
    spearman_with_ci,
)
from tunewise.evaluation.stats import mean_with_ci
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import Prediction, Spent, predict
from tunewise.inference.predictor import Request
from tunewise.models.backend import Backend, Message
from tunewise.task.config import Contract, LabelFormat, TextFormat
from tunewise.task.data import Example
from tunewise.task.judge_config import Judge

RATIONALE_TOKENS = 48
LOW_AGREEMENT = 0.5  # Spearman with human grades below this: the judge is not to be trusted


@dataclass
class JudgeOutcome:
    """One candidate's judgement: a score per answer, each verdict, and what it cost."""

    scores: list[float]
    verdicts: list[dict[str, Any]]
    usage: Spent
    positions: dict[str, float | int] | None = None  # pairwise: position bias


@dataclass
class _Asker:
    """A Predictor for the judge's requests: its system prompt, then the prepared text."""

    backend: Backend
    system: str
    name: str = "judge"
    strategy: str = "judge"
    params: dict[str, Any] = field(default_factory=dict)
    setup: Setup = field(default_factory=Setup)

    def request(self, example: Example) -> Request:
        messages: list[Message] = [{"role": "system", "content": self.system}]
        if "verdict" in example.extra:  # the rationale: the verdict, then why
            messages += [
                {"role": "user", "content": example.input},
                {"role": "assistant", "content": str(example.extra["verdict"])},
                {"role": "user", "content": "In one sentence, why?"},
            ]
        else:
            messages.append({"role": "user", "content": example.input})
        return Request(messages)


class ModelJudge:
    """Grades candidates' answers as the task's `judge:` block says."""

    def __init__(
        self, config: Judge, contract: Contract, backend: Backend, cache: ResponseCache, seed: int
    ) -> None:
        self.config, self.backend, self.cache, self.seed = config, backend, cache, seed
        self.criteria = rubric(config, contract)
        self.scale = config.scale
        self.answers: dict[tuple[str, str, str], str] = {}  # (candidate, id, input) -> answer
        self.judged: list[tuple[dict[str, float] | None, str]] = []  # for self-consistency
        self.total = Spent()

    def grade(
        self, candidate: str, outputs: Sequence[str], examples: Sequence[Example]
    ) -> JudgeOutcome:
        """Judge one candidate's answers (pairwise: against the baseline's)."""
        for output, example in zip(outputs, examples, strict=True):
            self.answers[(candidate, example.id, example.input)] = output
        if self.config.mode == "pointwise":
            return self._pointwise(outputs, examples)
        if candidate == self.config.baseline:
            verdicts = [{"baseline": candidate, "verdict": "self"} for _ in examples]
            return JudgeOutcome([0.5] * len(examples), verdicts, Spent())
        return self._pairwise(candidate, outputs, examples)

    def _ask(
        self, system: str, prompts: Sequence[Example], labels: list[str], usage: Spent
    ) -> list[Prediction]:
        asker = _Asker(self.backend, system)
        verdicts = predict(asker, prompts, LabelFormat(type="label", labels=labels), self.cache,
                           max_new_tokens=2)  # fmt: skip
        usage.add(verdicts)
        self.total.add(verdicts)
        self.judged += [(p.probabilities, p.output) for p in verdicts]
        return verdicts

    def _why(self, system: str, prompts: Sequence[Example], verdicts: Sequence[Prediction],
             usage: Spent) -> list[str | None]:  # fmt: skip
        if not self.config.rationale:
            return [None] * len(prompts)
        asked = [
            Example(p.id, p.input, "", p.source, {"verdict": v.output})
            for p, v in zip(prompts, verdicts, strict=True)
        ]
        reasons = predict(_Asker(self.backend, system), asked, TextFormat(type="text"),
                          self.cache, max_new_tokens=RATIONALE_TOKENS)  # fmt: skip
        usage.add(reasons)
        self.total.add(reasons)
        return [r.output.strip() for r in reasons]

    def _reference(self, example: Example) -> str | None:
        return example.output if self.config.reference else None

    def _pointwise(self, outputs: Sequence[str], examples: Sequence[Example]) -> JudgeOutcome:
        system = pointwise_system(self.criteria, self.scale)
        prompts = [
            Example(
                e.id, pointwise_prompt(e.input, self._reference(e), o, self.scale), "", e.source
            )
            for o, e in zip(outputs, examples, strict=True)
        ]
        usage = Spent()
        verdicts = self._ask(system, prompts, grades(self.scale), usage)
        reasons = self._why(system, prompts, verdicts, usage)
        scores = [pointwise_score(v.output, v.probabilities, self.scale) for v in verdicts]
        records = [
            {"grade": int(v.output), "probabilities": v.probabilities, "rationale": why}
            for v, why in zip(verdicts, reasons, strict=True)
        ]
        return JudgeOutcome(scores, records, usage)

    def _pairwise(
        self, candidate: str, outputs: Sequence[str], examples: Sequence[Example]
    ) -> JudgeOutcome:
        baseline = self.config.baseline
        theirs = []
        for e in examples:
            answer = self.answers.get((baseline, e.id, e.input))
            if answer is None:
                raise TunewiseError(
                    f"judge.baseline '{baseline}' has no answer to example {e.id!r} for "
                    f"{candidate} to be compared with: measure {baseline} first (list it first "
                    "in candidates), or set judge.baseline to a candidate that is"
                )
            theirs.append(answer)
        system = pairwise_system(self.criteria)
        ours_first = [
            Example(e.id, pairwise_prompt(e.input, self._reference(e), o, t), "", e.source)
            for o, t, e in zip(outputs, theirs, examples, strict=True)
        ]
        ours_second = [
            Example(e.id, pairwise_prompt(e.input, self._reference(e), t, o), "", e.source)
            for o, t, e in zip(outputs, theirs, examples, strict=True)
        ]
        usage = Spent()
        first = self._ask(system, ours_first, [FIRST, SECOND], usage)
        second = self._ask(system, ours_second, [FIRST, SECOND], usage)
        reasons = self._why(system, ours_first, first, usage)
        pairs = [(a.output, b.output) for a, b in zip(first, second, strict=True)]
        records = [
            {"baseline": baseline, "candidate_first": a, "candidate_second": b, "rationale": why}
            for (a, b), why in zip(pairs, reasons, strict=True)
        ]
        scores = [pairwise_score(a, b) for a, b in pairs]
        return JudgeOutcome(scores, records, usage, position_stats(pairs))

    def self_consistency(self) -> dict[str, Any] | None:
        """How often two seeded samplings of the judge's own verdicts agree."""
        if not self.judged:
            return None
        probabilities = [p for p, _ in self.judged]
        chosen = [c for _, c in self.judged]
        one = sampled_verdicts(probabilities, chosen, self.seed + 1)
        two = sampled_verdicts(probabilities, chosen, self.seed + 2)
        same = np.array([a == b for a, b in zip(one, two, strict=True)], dtype=float)
        return {"agreement": mean_with_ci(same, seed=self.seed).to_dict(), "samplings": 2}

    def calibrate(self, path: Path, examples: dict[str, Example]) -> dict[str, Any]:
        """Grade the outputs people graded; agreement as Spearman's rho (and accuracy when the
        human grades are 0 or 1), with a warning when it is low."""
        rows = read_grades(path, examples)
        graded = [examples[r["example_id"]] for r in rows]
        outcome = self._pointwise([r["output"] for r in rows], graded)
        human = [r["grade"] for r in rows]
        rho = spearman_with_ci(outcome.scores, human, seed=self.seed)
        report: dict[str, Any] = {"source": path.name, "spearman": rho.to_dict()}
        if set(human) <= {0.0, 1.0}:
            hits = [
                float((s >= 0.5) == (h == 1.0)) for s, h in zip(outcome.scores, human, strict=True)
            ]
            report["accuracy"] = mean_with_ci(np.array(hits), seed=self.seed).to_dict()
        report["usage"] = outcome.usage.to_dict()
        if rho.value < LOW_AGREEMENT:
            report["warning"] = (
                f"the judge agrees weakly with the human grades (Spearman {rho.value:.2f}, "
                f"95% CI {rho.ci_low:.2f}-{rho.ci_high:.2f}, n={rho.n}); its scores are not to "
                "be trusted for this decision"
            )
        return report


def read_grades(path: Path, examples: dict[str, Example]) -> list[dict[str, Any]]:
    """The human grades file: JSONL of {example_id, output, grade in [0, 1]}; a bad line names
    the file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, None, None, f"cannot read the judge's grades ({exc})") from None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(path, number, None, f"malformed JSON ({exc.msg})") from None
        if not isinstance(row, dict):
            raise DataError(path, number, None, "each line must be a JSON object")
        if str(row.get("example_id")) not in examples:
            raise DataError(path, number, "example_id", "names no example of train or test")
        if not isinstance(row.get("output"), str):
            raise DataError(path, number, "output", "must be the graded answer, a string")
        grade = row.get("grade")
        if isinstance(grade, bool) or not isinstance(grade, int | float) or not 0 <= grade <= 1:
            raise DataError(path, number, "grade", "must be a number in [0, 1]")
        rows.append({"example_id": str(row["example_id"]), "output": row["output"],
                     "grade": float(grade)})  # fmt: skip
    if len(rows) < 3:
        raise DataError(path, None, None, "needs at least 3 graded outputs to measure agreement")
    return rows


def judge_cost(usage: Spent, model: str, remote: bool, prices: PriceList) -> dict[str, Any]:
    """The judge's calls priced like requests: by the judge model's token price, else by its
    compute time at compute_usd_per_hour, else unpriced (never free)."""
    calls = CostInputs(
        name="judge",
        strategy=first_in_ladder("prompting"),  # priced as a prompting candidate's calls
        model=model,
        input_tokens_per_request=usage.input_tokens,
        output_tokens_per_request=usage.output_tokens,
        compute_seconds_per_request=usage.seconds,
        remote=remote,
    )
    return request_cost(calls, prices).to_dict()


def candidate_judgement(
    outcome: JudgeOutcome, judge: Judge, model: str, remote: bool, prices: PriceList
) -> dict[str, Any]:
    """A candidate's `judge` block in results.json."""
    return {
        "mode": judge.mode,
        "usage": outcome.usage.to_dict(),
        "cost": judge_cost(outcome.usage, model, remote, prices),
        "positions": outcome.positions,
    }


def run_judgement(
    judge: ModelJudge, model: str, examples: Sequence[Example], prices: PriceList
) -> dict[str, Any]:
    """The run's `judge` block: the judge's settings, its calibration against human grades
    (else its self-consistency), and all it cost."""
    config = judge.config
    record: dict[str, Any] = {
        "model": model,
        "mode": config.mode,
        "rubric": judge.criteria,
        "scale": config.scale if config.mode == "pointwise" else None,
        "baseline": config.baseline if config.mode == "pairwise" else None,
        "reference_shown": config.reference,
        "calibration": None,
        "self_consistency": None,
    }
    if config.grades is not None:
        by_id = {e.id: e for e in examples}
        record["calibration"] = judge.calibrate(config.grades, by_id)
    else:
        record["self_consistency"] = judge.self_consistency()
    remote = bool(getattr(judge.backend, "remote", False))
    record["remote"] = remote
    record["usage"] = judge.total.to_dict()
    record["cost"] = judge_cost(judge.total, model, remote, prices)
    return record
