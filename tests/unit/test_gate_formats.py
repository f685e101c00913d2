"""`tunewise gate --format text|junit|json|github [--output PATH]`: two scripted runs where
accuracy regresses and format validity does not, each report read back the way CI reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedBackend, measure
from junitparser import Failure, JUnitXml
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.evaluation.paired import PairedTest
from tunewise.records.compare import CandidateDiff, diff_runs, gate, read_run
from tunewise.records.gate_formats import GateReport, escape_data, github, junit
from tunewise.records.results import write_run

BROKEN = ["test-0", "test-1", "test-2"]  # right before the prompt edit, "neutral" after it


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def runs(tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path) -> tuple[Path, Path]:
    """A baseline (accuracy 5/6) and a run whose edited prompt answers "neutral" (2/6)."""
    first = write_run(measure(tiny_task, strategies=("zero-shot",)), tmp_path / "runs")
    tiny_task.write_text(tiny_task.read_text().replace("Classify the sentiment", "Summarise"))
    rule = scripted.rule
    scripted.rule = lambda m: "neutral" if "Summarise" in m[0]["content"] else rule(m)
    second = write_run(measure(tiny_task, strategies=("zero-shot",)), tmp_path / "runs")
    return first, second


def gated(runs: tuple[Path, Path], *options: Any) -> Any:
    # alpha 0.3: six examples cannot reach p < 0.05; three broken, none fixed gives p = 0.25.
    return cli("gate", runs[1], "--baseline", runs[0], "--alpha", "0.3", *options)


def test_text_is_the_default_and_unchanged(runs: tuple[Path, Path]) -> None:
    default, text = gated(runs), gated(runs, "--format", "text")
    assert default.exit_code == text.exit_code == 1
    assert default.stdout == text.stdout and default.stderr == text.stderr == ""
    a, b = read_run(runs[0]), read_run(runs[1])
    result = gate(diff_runs(a, b), max_drop=0.01, alpha=0.3)
    expected = [f"baseline {a.run_id} -> {b.run_id}", *result.lines]
    assert default.stdout.split() == " ".join(expected).split()  # as the console wraps it
    assert result.lines[0].startswith("FAIL zero-shot accuracy: 0.833 -> 0.333 (-0.500, p=0.25")


def test_junit_has_one_failure_per_regressed_metric(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "gate.xml"
    shown = gated(runs, "--format", "junit", "--output", out)
    assert shown.exit_code == 1, shown.output
    assert "FAIL zero-shot accuracy" in shown.stdout  # the text stays on the terminal
    xml = JUnitXml.fromfile(str(out))
    [suite] = list(xml)
    assert suite.name == "zero-shot"
    cases = {case.name: case for case in suite}
    assert "accuracy" in cases and "format_validity" in cases
    failing = [name for name, case in cases.items() if not case.is_passed]
    assert failing == ["accuracy"]
    assert all(case.classname == "tunewise.gate.tiny-sentiment" for case in cases.values())
    [failure] = cases["accuracy"].result
    assert isinstance(failure, Failure)
    message = failure.message
    assert "accuracy: 0.833 -> 0.333 (drop 0.500; mcnemar p=0.25" in message
    assert "95% CI of the change" in message and "right -> wrong: test-0, test-1, test-2" in message
    assert "'I love it' expected 'positive', 'positive' -> 'neutral'" in failure.text
    assert (xml.tests, xml.failures) == (len(cases), 1)
    assert (suite.tests, suite.failures) == (len(cases), 1)
    assert not list(tmp_path.glob(".gate.xml-*"))  # no temporary file left behind


def test_json_reports_every_metric(runs: tuple[Path, Path]) -> None:
    shown = gated(runs, "--format", "json")
    assert shown.exit_code == 1
    assert "FAIL zero-shot accuracy" in shown.stderr  # stdout carries the document alone
    document = json.loads(shown.stdout)
    a, b = read_run(runs[0]), read_run(runs[1])
    assert (document["baseline_run_id"], document["current_run_id"]) == (a.run_id, b.run_id)
    assert document["passed"] is False and document["task"] == "tiny-sentiment"
    [candidate] = document["candidates"]
    assert candidate["name"] == "zero-shot" and candidate["shared_examples"] == 6
    accuracy = candidate["metrics"]["accuracy"]
    assert accuracy["baseline"] == pytest.approx(5 / 6) and accuracy["current"] == pytest.approx(
        2 / 6
    )
    assert accuracy["drop"] == pytest.approx(0.5) and accuracy["p_value"] == pytest.approx(0.25)
    assert accuracy["test"] == "mcnemar" and accuracy["ci_low"] <= accuracy["ci_high"]
    assert accuracy["regressed"] is True and accuracy["flipped"] == BROKEN
    validity = candidate["metrics"]["format_validity"]
    assert validity["regressed"] is False and validity["drop"] == 0 and validity["flipped"] == []
    assert [m for m, v in candidate["metrics"].items() if v["regressed"]] == ["accuracy"]


def test_github_has_an_error_per_regression_and_a_notice_on_a_pass(
    runs: tuple[Path, Path],
) -> None:
    failed = gated(runs, "--format", "github")
    assert failed.exit_code == 1
    lines = failed.stdout.splitlines()
    [error] = [line for line in lines if line.startswith("::error")]
    assert lines == [error]
    assert error.startswith("::error title=tunewise gate::zero-shot accuracy: 0.833 -> 0.333")
    assert "right -> wrong: test-0, test-1, test-2" in error
    passed = cli("gate", runs[1], "--baseline", runs[0], "--format", "github")  # alpha 0.05
    assert passed.exit_code == 0
    [notice] = passed.stdout.splitlines()
    assert notice.startswith("::notice title=tunewise gate::passed: ")


def test_a_bad_format_or_output_folder_is_a_user_error(
    runs: tuple[Path, Path], tmp_path: Path
) -> None:
    bad = gated(runs, "--format", "xml")
    assert bad.exit_code == 2
    assert bad.stderr.strip().splitlines() == [
        "error: unknown --format 'xml'; choose one of: text, junit, json, github"
    ]
    missing = gated(runs, "--format", "json", "--output", tmp_path / "no" / "gate.json")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


# ---- the pure formatters on a hand-made diff ---------------------------------------------------


def awkward_report() -> GateReport:
    """A regression whose example ids and outputs hold what a format must escape."""
    test = PairedTest("mcnemar", 1.0, 0.0, 20, 0.001, -1.0, -0.9, broken=20)
    ids = ["a%b", "line\nbreak", "cr\rhere", "bell\x07"]
    diff = CandidateDiff("few-shot", ["model: a -> b"], {"accuracy": test}, [], 20,
                         {"accuracy": ids})  # fmt: skip
    return GateReport("t<&>", "base", "new", [diff], gate([diff], max_drop=0.01))


def test_github_escapes_percent_and_line_breaks() -> None:
    assert escape_data("100%\r\nnext") == "100%25%0D%0Anext"
    [line] = github(awkward_report()).splitlines()
    assert "a%25b, line%0Abreak, cr%0Dhere" in line and "\n" not in line.strip()


def test_junit_stays_well_formed_with_markup_and_control_characters() -> None:
    xml = JUnitXml.fromstring(junit(awkward_report()).encode("utf-8"))
    [suite] = list(xml)
    [case] = list(suite)
    assert case.classname == "tunewise.gate.t<&>"
    assert "line\nbreak" in case.result[0].message and "bell\ufffd" in case.result[0].message
