"""Several datasets per task: per-dataset results, the macro average, and the flags."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
from conftest import (
    SENTIMENT_TEST,
    SENTIMENT_TRAIN,
    ScriptedBackend,
    measure,
    read_run,
    write_jsonl,
)
from rich.console import Console

from tunewise.cli.run_summary import render_table
from tunewise.errors import TaskError
from tunewise.evaluation import MetricValue
from tunewise.measuring.across_datasets import disagreements, macro_average
from tunewise.records.results import load_schema, write_run
from tunewise.report import write_report
from tunewise.task.loading import load_task


def value(v: float) -> dict[str, MetricValue]:
    return {"accuracy": MetricValue(v, v - 0.1, v + 0.1, 50)}


TABLE = {
    "main": {"few-shot": value(0.8), "lora": value(0.7)},
    "movies": {"few-shot": value(0.6), "lora": value(0.75)},
    "shops": {"few-shot": value(0.9), "lora": value(0.8)},
}


def test_macro_average_is_the_unweighted_mean() -> None:
    assert macro_average(TABLE) == {"few-shot": {"accuracy": 0.7667}, "lora": {"accuracy": 0.75}}


def test_a_candidate_that_wins_somewhere_and_loses_elsewhere_is_flagged() -> None:
    flags = disagreements(TABLE, "accuracy")
    assert flags == [
        "few-shot is best on main (0.800), shops (0.900) but behind on "
        "movies (0.600 vs lora 0.750) by accuracy",
        "lora is best on movies (0.750) but behind on main (0.700 vs few-shot 0.800), "
        "shops (0.800 vs few-shot 0.900) by accuracy",
    ]
    agreeing = {"a": {"x": value(0.9), "y": value(0.1)}, "b": {"x": value(0.8), "y": value(0.2)}}
    assert disagreements(agreeing, "accuracy") == []


MORE = """
datasets:
  - {name: gadgets, train: data/gadgets-train.jsonl, test: data/gadgets-test.jsonl}
  - {name: kitchen, train: data/kitchen-train.jsonl}
"""


def test_every_candidate_is_measured_on_every_dataset(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    folder = tiny_task.parent
    write_jsonl(folder / "data" / "gadgets-train.jsonl", SENTIMENT_TRAIN[::-1])
    write_jsonl(folder / "data" / "gadgets-test.jsonl", [("love this gadget", "positive")] * 4)
    write_jsonl(folder / "data" / "kitchen-train.jsonl", SENTIMENT_TRAIN + SENTIMENT_TEST)
    tiny_task.write_text(tiny_task.read_text() + MORE)

    run = write_run(measure(tiny_task, strategies=("zero-shot", "few-shot")), tmp_path / "runs")
    document, _ = read_run(run)

    jsonschema.validate(document, load_schema("results"))
    names = [d["name"] for d in document["datasets"]]
    assert names == ["main", "gadgets", "kitchen"]
    gadgets = document["datasets"][1]
    assert gadgets["data"]["test_examples"] == 4
    assert gadgets["candidates"]["few-shot"]["accuracy"]["value"] == 1.0
    assert document["datasets"][2]["data"]["test_examples"] > 0  # split from its own train
    mains = {c["name"]: c["metrics"]["accuracy"]["value"] for c in document["candidates"]}
    assert (
        document["datasets"][0]["candidates"]["zero-shot"]["accuracy"]["value"]
        == mains["zero-shot"]
    )
    expected = (
        sum(d["candidates"]["zero-shot"]["accuracy"]["value"] for d in document["datasets"]) / 3
    )
    assert document["macro"]["zero-shot"]["accuracy"] == pytest.approx(expected, abs=1e-4)

    html, markdown = write_report(run)
    assert "Across datasets" in html.read_text() and "gadgets (n=4)" in markdown.read_text()
    console = Console(width=200, record=True)
    console.print(render_table(document))
    assert "accuracy on gadgets" in console.export_text()


def test_dataset_names_are_distinct(tiny_task: Path) -> None:
    same = "  - {name: a, train: data/train.jsonl}\n"
    twice = "\ndatasets:\n" + same + same
    tiny_task.write_text(tiny_task.read_text() + twice)
    with pytest.raises(TaskError, match="distinct names"):
        load_task(tiny_task)
