"""The model judge with the scripted backend: pointwise grades, pairwise verdicts in both orders
with position bias, its calls cached and costed, calibration against human grades."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import TEXT_TASK, ScriptedBackend, write_jsonl
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.errors import DataError
from tunewise.evaluation.judging import pairwise_score, pointwise_score, position_stats
from tunewise.inference.judge import read_grades
from tunewise.models.backend import Message
from tunewise.task.data import Example

QUESTIONS = [(f"What is item {i}?", f"item {i} answer") for i in range(6)]
ANSWERS = dict(QUESTIONS)


def task_folder(tmp_path: Path, judge: str, extra: str = "") -> Path:
    folder = tmp_path / "task"
    write_jsonl(folder / "data" / "train.jsonl", QUESTIONS)
    write_jsonl(folder / "data" / "test.jsonl", QUESTIONS)
    text = TEXT_TASK.replace(
        "target: {metric: token_f1, min: 0.5}", "target: {metric: judge, min: 0.6}"
    )
    text += f"judge: {judge}\ncandidates:\n"
    text += "  - {strategy: zero-shot}\n  - {strategy: few-shot, k: 2}\n"
    (folder / "task.yaml").write_text(text + extra, encoding="utf-8")
    return folder / "task.yaml"


def candidate_answer(messages: Sequence[Message]) -> str:
    """Few-shot (demos in the conversation) answers right, zero-shot wrong."""
    question = messages[-1]["content"].strip()
    return ANSWERS.get(question, "?") if len(messages) > 2 else "no idea"


def shown(prompt: str, letter: str) -> str:
    return re.search(rf"Answer {letter}:\n(.*?)\n\n", prompt, re.DOTALL).group(1)  # type: ignore[union-attr]


def run(path: Path, out: Path) -> dict:
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    [folder] = sorted(out.iterdir())[-1:]
    return {
        "results": json.loads((folder / "results.json").read_text()),
        "predictions": [
            json.loads(x) for x in (folder / "predictions.jsonl").read_text().splitlines()
        ],
    }


def by_name(results: dict) -> dict[str, dict]:
    return {c["name"]: c for c in results["candidates"]}


def test_a_judge_that_always_picks_the_first_answer_shows_its_position_bias(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    def rule(messages: Sequence[Message]) -> str:
        return (
            "A" if messages[0]["content"].startswith("You compare") else candidate_answer(messages)
        )

    scripted.rule = rule
    path = task_folder(tmp_path, "{mode: pairwise, baseline: zero-shot, model: 'scripted:test'}")
    written = run(path, tmp_path / "runs")
    candidates = by_name(written["results"])
    few = candidates["few-shot"]
    assert few["metrics"]["judge"]["value"] == 0.5  # it won as A and lost as B, every time
    assert few["judge"]["positions"] == {
        "first_position_rate": 1.0,
        "order_consistency": 0.0,
        "pairs": 6,
    }
    assert candidates["zero-shot"]["metrics"]["judge"]["value"] == 0.5  # the baseline itself
    verdicts = [p["judge"] for p in written["predictions"] if p["candidate"] == "few-shot"]
    assert all(v == {"baseline": "zero-shot", "candidate_first": "A", "candidate_second": "A",
                     "rationale": None} for v in verdicts)  # fmt: skip


def test_pairwise_verdicts_swap_back_to_the_candidate_whatever_the_order(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    def rule(messages: Sequence[Message]) -> str:
        if not messages[0]["content"].startswith("You compare"):
            return candidate_answer(messages)
        prompt = messages[-1]["content"]
        return "A" if shown(prompt, "A") in ANSWERS.values() else "B"  # the right answer wins

    scripted.rule = rule
    path = task_folder(tmp_path, "{mode: pairwise, model: 'scripted:test'}")
    written = run(path, tmp_path / "runs")
    few = by_name(written["results"])["few-shot"]
    assert few["metrics"]["judge"]["value"] == 1.0
    assert few["judge"]["positions"]["first_position_rate"] == 0.5
    assert few["judge"]["positions"]["order_consistency"] == 1.0
    assert written["results"]["recommendation"]["metric"] == "judge"


def test_judge_calls_are_counted_priced_and_cached(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = lambda m: (
        "4" if m[0]["content"].startswith("You grade") else candidate_answer(m)
    )
    prices = "prices: {compute_usd_per_hour: 3.6}\n"
    path = task_folder(tmp_path, "{model: 'scripted:test'}", prices)
    first = run(path, tmp_path / "runs")["results"]
    few = by_name(first)["few-shot"]
    # 0.7 on the chosen grade 4, 0.075 on each other: E = 3.625, (3.625 - 1) / 4.
    assert few["metrics"]["judge"]["value"] == pytest.approx(0.6562, abs=1e-4)
    usage = few["judge"]["usage"]
    assert usage["requests"] == usage["calls"] == 6 and usage["input_tokens"] > 0
    assert few["judge"]["cost"]["basis"] == "compute" and few["judge"]["cost"]["usd"] > 0
    # The run's total adds what the test answers' judgements do not hold: the few-shot demo
    # redraws' answers are judged too.
    total = first["judge"]["usage"]
    judged = sum(c["judge"]["usage"]["input_tokens"] for c in first["candidates"])
    assert total["input_tokens"] > judged and total["requests"] == 12 + 3 * 6  # three demo draws
    assert first["judge"]["self_consistency"]["agreement"]["n"] == total["requests"]
    assert first["judge"]["calibration"] is None
    again = run(path, tmp_path / "runs")["results"]
    assert by_name(again)["few-shot"]["judge"]["usage"]["calls"] == 0  # all from the cache
    assert by_name(again)["few-shot"]["metrics"]["judge"] == few["metrics"]["judge"]


def test_pointwise_verdicts_and_rationales_land_in_predictions(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    def rule(messages: Sequence[Message]) -> str:
        if not messages[0]["content"].startswith("You grade"):
            return candidate_answer(messages)
        if messages[-1]["content"] == "In one sentence, why?":
            return "It names the item."
        return "5" if "item" in shown_answer(messages[-1]["content"]) else "1"

    scripted.rule = rule
    path = task_folder(tmp_path, "{model: 'scripted:test', rationale: true}")
    written = run(path, tmp_path / "runs")
    few = [p for p in written["predictions"] if p["candidate"] == "few-shot"]
    assert {p["judge"]["grade"] for p in few} == {5}
    assert all(p["judge"]["rationale"] == "It names the item." for p in few)
    assert all(p["scores"]["judge"] == pytest.approx(0.8125) for p in few)
    zero = by_name(written["results"])["zero-shot"]
    assert zero["metrics"]["judge"]["value"] == pytest.approx(0.1875)
    assert by_name(written["results"])["few-shot"]["judge"]["usage"]["requests"] == 12


def shown_answer(prompt: str) -> str:
    return prompt.split("Answer to grade:\n", 1)[1].split("\n\n")[0]


def test_calibration_reports_agreement_with_human_grades_and_warns_when_low(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = lambda m: (
        ("5" if "answer" in shown_answer(m[-1]["content"]) else "1")
        if m[0]["content"].startswith("You grade")
        else candidate_answer(m)
    )
    folder = tmp_path / "task"
    rows = [
        {"example_id": "test-0", "output": "item 0 answer", "grade": 1},
        {"example_id": "test-1", "output": "no idea", "grade": 0},
        {"example_id": "test-2", "output": "item 2 answer", "grade": 1},
        {"example_id": "test-3", "output": "nothing", "grade": 0},
    ]
    folder.mkdir()
    (folder / "grades.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    path = task_folder(tmp_path, "{model: 'scripted:test', grades: grades.jsonl}")
    calibration = run(path, tmp_path / "runs")["results"]["judge"]["calibration"]
    assert calibration["spearman"]["value"] == pytest.approx(1.0)
    assert calibration["accuracy"]["value"] == 1.0 and calibration["spearman"]["n"] == 4
    assert "warning" not in calibration
    flipped = [dict(r, grade=1 - r["grade"]) for r in rows]
    (folder / "grades.jsonl").write_text("\n".join(json.dumps(r) for r in flipped) + "\n")
    calibration = run(path, tmp_path / "runs2")["results"]["judge"]["calibration"]
    assert calibration["spearman"]["value"] == pytest.approx(-1.0)
    assert "agrees weakly with the human grades" in calibration["warning"]
    reasons = run(path, tmp_path / "runs3")["results"]["recommendation"]["reasons"]
    assert calibration["warning"] in reasons


def test_a_candidate_measured_before_its_baseline_is_a_one_line_error(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = candidate_answer
    path = task_folder(tmp_path, "{mode: pairwise, baseline: few-shot, model: 'scripted:test'}")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2
    [line] = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert "judge.baseline 'few-shot' has no answer" in line and "measure few-shot first" in line


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"example_id": "nope", "output": "x", "grade": 1}', "example_id"),
        ('{"example_id": "e", "output": 3, "grade": 1}', "output"),
        ('{"example_id": "e", "output": "x", "grade": 2}', "grade"),
        ('{"example_id": "e", "output": "x", "grade": true}', "grade"),
    ],
)
def test_a_bad_grades_line_names_the_file_line_and_field(
    tmp_path: Path, line: str, field: str
) -> None:
    path = tmp_path / "grades.jsonl"
    good = '{"example_id": "e", "output": "x", "grade": 0.5}'
    path.write_text(f"{good}\n{line}\n{good}\n")
    with pytest.raises(DataError) as caught:
        read_grades(path, {"e": Example("e", "q", "a", "f:1")})
    assert f"{path}:2: field '{field}'" in str(caught.value)


def test_scores_from_verdicts() -> None:
    assert pointwise_score("3", None, 5) == 0.5
    assert pointwise_score("1", {"1": 0.5, "5": 0.5}, 5) == 0.5
    assert [pairwise_score(a, b) for a, b in (("A", "B"), ("A", "A"), ("B", "A"))] == [
        1.0,
        0.5,
        0.0,
    ]
    stats = position_stats([("A", "B"), ("A", "A")])
    assert stats == {"first_position_rate": 0.75, "order_consistency": 0.5, "pairs": 2}


def test_the_terminal_names_the_judge_and_its_cost(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    # Every candidate answers "x": the judge is called once per distinct prompt, 6 in all.
    scripted.rule = lambda m: "3" if m[0]["content"].startswith("You grade") else "x"
    path = task_folder(tmp_path, "{model: 'scripted:test'}")
    result = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert re.search(
        r"judge: scripted:test \(pointwise\), 30 verdicts, 6 calls, [\d,]+ tokens", result.stdout
    )
    assert "self-consistency over two samplings" in result.stdout


def test_the_prompt_search_ranks_its_trials_by_the_judge(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    from tunewise.strategies.optimized_prompt import OptimizedPromptCandidate
    from tunewise.strategies.optimized_prompt.prompt_search import prepare
    from tunewise.task.loading import load_task

    graded: list[str] = []

    def rule(messages: Sequence[Message]) -> str:
        if messages[0]["content"].startswith("You grade"):
            graded.append(shown_answer(messages[-1]["content"]))
            return "5"
        return candidate_answer(messages)

    scripted.rule = rule
    task = load_task(task_folder(tmp_path, "{mode: pairwise, model: 'scripted:test'}"))
    train = [Example(f"t{i}", q, a, "t") for i, (q, a) in enumerate(QUESTIONS * 2)]
    spec = OptimizedPromptCandidate(strategy="optimized-prompt", instructions=0, k=2)
    predictor = prepare(task, spec, train, scripted, "opt")
    assert graded  # pointwise, since a trial's answers have no baseline answers beside them
    search = predictor.setup.search
    assert search is not None and search.record()["metric"] == "judge"
    assert search.record()["requests"] >= len(graded)  # the judge's calls are the search's cost
