"""--repeats: sampled answers per example, and how often they disagree."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from conftest import ScriptedBackend, measure, read_run

from tunewise.measuring.flakiness import example_flakiness
from tunewise.models.backend import Message
from tunewise.records.results import load_schema, write_run


def test_example_flakiness_is_the_share_off_the_most_common_answer() -> None:
    assert example_flakiness(["a", "a", "a"]) == 0
    assert example_flakiness(["a", "b", "a", "a"]) == pytest.approx(0.25)
    assert example_flakiness([" a", "a "]) == 0  # whitespace is not a different answer


def test_label_candidates_sample_from_their_label_probabilities(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    run = measure(tiny_task, strategies=("zero-shot",), repeats=8)
    [candidate] = run.candidates
    flakiness = candidate.flakiness
    assert flakiness is not None and flakiness.repeats == 8
    # The scripted model gives its answer probability 0.7: 8 draws almost surely disagree.
    assert flakiness.flaky.value > 0.5
    assert len(flakiness.quality) == 8
    calls = len(scripted.calls)
    again = measure(tiny_task, strategies=("zero-shot",), repeats=8)
    assert len(scripted.calls) == calls  # no model call: cached scores, seeded draws
    assert again.candidates[0].flakiness == flakiness


TEXT_TASK = """\
name: tiny-text
contract:
  objective: Answer the question.
  audience: Anyone.
  source_material: General knowledge.
  output_format: {type: text}
data:
  train: data/train.jsonl
  test: data/test.jsonl
model: scripted:test
"""


def test_text_candidates_are_sampled_with_seeds_and_cached_apart_from_greedy(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    tiny_task.write_text(TEXT_TASK)

    def sample(messages: list[Message], seed: int) -> str:
        text = messages[-1]["content"]
        return "maybe" if "love" in text and seed % 2 else "greedy"

    scripted.rule = lambda messages: "greedy"
    scripted.sample = sample
    folder = write_run(measure(tiny_task, strategies=("zero-shot",), repeats=4), tmp_path / "r")
    document, lines = read_run(folder)
    jsonschema.validate(document, load_schema("results"))
    flakiness = document["candidates"][0]["flakiness"]
    loving = [line["example_id"] for line in lines if "love" in line["input"]]
    assert {e["example_id"] for e in flakiness["most_flaky"]} == set(loving)
    assert all(e["flakiness"] == 0.5 for e in flakiness["most_flaky"])
    assert flakiness["flaky_examples"]["value"] == pytest.approx(len(loving) / len(lines), abs=1e-4)
    assert {line["output"] for line in lines} == {"greedy"}  # measured answers stay greedy
