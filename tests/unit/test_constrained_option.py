"""decoding: constrained in task.yaml: which formats allow it, and which backends can do it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ScriptedBackend, write_jsonl

from tunewise.errors import TaskError
from tunewise.models.constrained import grammar_for
from tunewise.records.results import write_run
from tunewise.run import RunOptions, run_task
from tunewise.task.config import JsonFormat, LabelFormat, TextFormat
from tunewise.task.loading import load_task

TASK = """\
name: tiny-constrained
contract:
  objective: Extract the city.
  audience: Mailroom staff.
  source_material: The address.
  output_format: {output_format}
data: {{train: train.jsonl, test: test.jsonl}}
model: scripted:test
candidates:
  - {{strategy: zero-shot}}
  - {{strategy: zero-shot, name: constrained, decoding: constrained}}
"""
JSON = "{type: json, json_schema: {type: object, properties: {city: {type: string}}}}"


def write_task(folder: Path, output_format: str) -> Path:
    rows = [(f"{i} Main St, Boston", '{"city": "Boston"}') for i in range(6)]
    write_jsonl(folder / "train.jsonl", rows)
    write_jsonl(folder / "test.jsonl", rows[:3])
    path = folder / "task.yaml"
    path.write_text(TASK.format(output_format=output_format), encoding="utf-8")
    return path


@pytest.mark.parametrize("output_format", ["{type: text}", "{type: label, labels: [a, b]}"])
def test_constrained_needs_a_format_with_a_shape(tmp_path: Path, output_format: str) -> None:
    with pytest.raises(TaskError, match="decoding: constrained needs an output format"):
        load_task(write_task(tmp_path, output_format))


def test_a_server_backed_model_is_skipped_with_the_reason(
    tmp_path: Path, scripted: ScriptedBackend
) -> None:
    scripted.rule = lambda messages: '{"city": "Boston"}'
    run = run_task(load_task(write_task(tmp_path, JSON)), RunOptions())
    results = json.loads((write_run(run, tmp_path / "runs") / "results.json").read_text())
    free, constrained = results["candidates"]
    assert free["status"] == "measured"
    assert constrained["status"] == "skipped"
    assert "masks a local model's logits" in constrained["skipped_reason"]


def test_grammars_come_from_json_schemas_and_text_patterns() -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert grammar_for(JsonFormat(type="json", json_schema=schema))
    assert grammar_for(TextFormat(type="text", pattern="[A-Z]{3}"))
    assert grammar_for(TextFormat(type="text")) is None
    assert grammar_for(LabelFormat(type="label", labels=["a", "b"])) is None
