"""A run carries tunewise check's findings and, for a multilingual test set, each candidate's
quality per language, answers in the expected language, and the drop between languages."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jsonschema
from conftest import ScriptedBackend

from tunewise.models.backend import Message
from tunewise.records.results import load_schema, write_run
from tunewise.run import RunOptions, run_task
from tunewise.task.loading import load_task

TASK = """\
name: tiny-multilingual
contract:
  objective: Answer the question about the product in one sentence.
  audience: Shoppers.
  source_material: The question.
  output_format: {{type: text}}
  {answer_language}
data: {{train: train.jsonl, test: test.jsonl}}
model: scripted:test
candidates: [{{strategy: zero-shot}}]
"""
QUESTIONS = {
    "en": ("Does the blender crush ice quickly?", "Yes, it crushes ice in a few seconds."),
    "de": ("Zerkleinert der Mixer Eis schnell?", "Ja, er zerkleinert Eis in wenigen Sekunden."),
    "es": ("¿La licuadora tritura el hielo rápido?", "Sí, tritura el hielo en pocos segundos."),
}


def english_only(messages: Sequence[Message]) -> str:
    """Right, in English, whatever the question's language: fine in English only."""
    return QUESTIONS["en"][1]


def write_task(folder: Path, answer_language: str = "") -> Path:
    train = [{"id": f"tr{i}", "input": QUESTIONS["en"][0], "output": QUESTIONS["en"][1],
              "language": "en"} for i in range(4)]  # fmt: skip
    test = [
        {"id": f"{code}{i}", "input": question, "output": answer, "language": code}
        for code, (question, answer) in QUESTIONS.items()
        for i in range(3)
    ]
    test.append({"id": "odd", "input": "Zero\u200bwidth in here?", "output": QUESTIONS["en"][1],
                 "language": "en"})  # fmt: skip
    for name, rows in (("train", train), ("test", test)):
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    path = folder / "task.yaml"
    path.write_text(TASK.format(answer_language=answer_language), encoding="utf-8")
    return path


def results_of(folder: Path) -> tuple[dict, str]:  # type: ignore[type-arg]
    run = write_run(run_task(load_task(folder / "task.yaml"), RunOptions()), folder / "runs")
    results = json.loads((run / "results.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_schema("results")).validate(results)
    return results, (run / "report.md").read_text(encoding="utf-8")


def test_quality_per_language_drop_and_answers_in_the_inputs_language(
    tmp_path: Path, scripted: ScriptedBackend
) -> None:
    scripted.rule = english_only
    write_task(tmp_path)
    results, report = results_of(tmp_path)
    drift = results["languages"]
    assert drift["source"] == "gold tags" and drift["metric"] == "exact_match"
    assert drift["trained_languages"] == {"en": 1.0}
    zero = drift["candidates"]["zero-shot"]
    assert zero["languages"]["en"]["n"] == 4 and zero["languages"]["de"]["n"] == 3
    assert zero["languages"]["en"]["score"]["value"] == 1.0
    assert zero["languages"]["de"]["score"]["value"] == 0.0
    assert zero["drop"]["best"] == "en" and zero["drop"]["largest"]["drop"] == 1.0
    # English answers to German and Spanish questions: 4 of 10 in the input's language.
    assert zero["in_expected_language"]["rate"]["value"] == 0.4
    assert "## Languages" in report and "largest drop from the best language" in report
    # tunewise check ran with the run: the zero-width character is a warning in both places.
    warnings = results["checks"]["warnings"]
    assert any("zero-width" in w for w in warnings), warnings
    assert "## Risk checks" in report and "zero-width" in report


def test_the_contract_can_fix_the_answer_language(
    tmp_path: Path, scripted: ScriptedBackend
) -> None:
    scripted.rule = english_only
    write_task(tmp_path, "answer_language: en")
    results, _ = results_of(tmp_path)
    drift = results["languages"]
    assert drift["expected_answer_language"] == "en"
    assert drift["candidates"]["zero-shot"]["in_expected_language"]["rate"]["value"] == 1.0
