"""Each label candidate records how its labels were scored (results.json), with the answers
that fell back to another method."""

from __future__ import annotations

from types import SimpleNamespace

from tunewise.inference.predict import _prediction
from tunewise.inference.predictor import Request
from tunewise.records.results import _label_scoring
from tunewise.task.data import Example


def prediction(value: dict[str, object]) -> object:
    example = Example("e-1", "great", "positive", "test.jsonl:1")
    request = Request(messages=[{"role": "user", "content": "great"}])
    return _prediction("zero-shot", example, request, value, cached=False)


def test_answers_carry_their_scoring_method() -> None:
    scored = {"label": "positive", "input_tokens": 3, "output_tokens": 1, "seconds": 0.1}
    assert prediction({**scored, "scoring": "first-token"}).label_scoring == "first-token"
    # Answers cached before the method was recorded came from local models: likelihood.
    assert prediction(scored).label_scoring == "likelihood"
    generated = {"text": "Paris", "input_tokens": 3, "output_tokens": 1, "seconds": 0.1}
    assert prediction(generated).label_scoring is None


def test_a_candidate_records_its_main_method_and_the_counts() -> None:
    methods = ["first-token"] * 3 + ["parsed"]
    result = SimpleNamespace(predictions=[SimpleNamespace(label_scoring=m) for m in methods])
    assert _label_scoring(result) == {  # type: ignore[arg-type]
        "label_scoring": "first-token",
        "label_scoring_answers": {"first-token": 3, "parsed": 1},
    }
    text = SimpleNamespace(predictions=[SimpleNamespace(label_scoring=None)])
    assert _label_scoring(text) == {"label_scoring": None, "label_scoring_answers": None}  # type: ignore[arg-type]


def test_the_report_shows_the_method_per_candidate() -> None:
    from tunewise.report.content import build_report

    def candidate(name: str, method: str, answers: dict[str, int]) -> dict[str, object]:
        metric = {"value": 0.5, "ci_low": 0.3, "ci_high": 0.7, "n": 4}
        return {"name": name, "strategy": "zero-shot", "status": "measured",
                "metrics": {"accuracy": metric}, "label_scoring": method,
                "label_scoring_answers": answers}  # fmt: skip

    results = {
        "run_id": "r",
        "task": {"name": "t", "output_format": "label"},
        "candidates": [
            candidate("local", "likelihood", {"likelihood": 4}),
            candidate("endpoint", "first-token", {"first-token": 3, "parsed": 1}),
        ],
    }
    table = build_report(results, []).candidates
    [row] = [row for row in table.rows if row[0] == "label scoring"]
    assert row == ["label scoring", "likelihood", "first-token (1 parsed)"]
    del results["candidates"][0]["label_scoring"], results["candidates"][1]["label_scoring"]
    assert "label scoring" not in [row[0] for row in build_report(results, []).candidates.rows]
