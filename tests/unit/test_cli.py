"""The command line: run/report/schema output, and one-line exit-2 errors for bad input."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import SENTIMENT_TRAIN, TASK_YAML, ScriptedBackend, write_jsonl
from typer.testing import CliRunner

from tunewise.cli.main import app

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


pytestmark = pytest.mark.usefixtures("contained_environment")


def invoke(*args: str | Path):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args])


def plain(text: str) -> str:
    return ANSI.sub("", text)


def run_folders(out: Path) -> list[Path]:
    return sorted(out.iterdir()) if out.exists() else []


# ---- happy paths ---------------------------------------------------------------------------


def test_run_prints_the_table_and_recommendation(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    result = invoke("run", tiny_task, "--out", out)
    assert result.exit_code == 0, result.output
    stdout = plain(result.stdout)
    assert "zero-shot" in stdout and "few-shot" in stdout
    assert "Recommendation" in stdout
    [folder] = run_folders(out)
    assert (folder / "results.json").exists() and (folder / "predictions.jsonl").exists()
    assert "Traceback" not in result.output


def test_report_prints_the_same_table(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    out = tmp_path / "runs"
    ran = invoke("run", tiny_task, "--out", out)
    assert ran.exit_code == 0, ran.output
    [folder] = run_folders(out)
    calls = len(scripted.calls)
    reported = invoke("report", folder)
    assert reported.exit_code == 0, reported.output
    table, report_line = plain(reported.stdout).rsplit("\nreport:", 1)
    assert "Recommendation" in table and "zero-shot" in table and "few-shot" in table
    assert plain(ran.stdout).startswith(table)  # run adds only the artifact paths after it
    assert "report.html" in report_line and (folder / "report.html").exists()
    assert len(scripted.calls) == calls  # report never touches a model


def test_schema_prints_the_task_schema(tmp_path: Path) -> None:
    result = invoke("schema")
    assert result.exit_code == 0
    schema = json.loads(result.stdout)
    assert "contract" in schema["properties"]
    assert "contract" in schema["required"]
    target = tmp_path / "task.schema.json"
    assert invoke("schema", "--output", target).exit_code == 0
    assert json.loads(target.read_text()) == schema


@pytest.mark.parametrize("command", [[], ["run"], ["report"], ["schema"]])
def test_help(command: list[str]) -> None:
    result = invoke(*command, "--help")
    assert result.exit_code == 0
    assert "Usage" in result.stdout
    if command:
        assert command[0] in result.stdout


def test_app_help_lists_every_command() -> None:
    stdout = invoke("--help").stdout
    assert all(name in stdout for name in ("run", "report", "schema"))


# ---- bad input: exit 2, one line on stderr, nothing written --------------------------------

Setup = Callable[[Path], list[str]]  # makes the bad input in a task folder; returns extra args


def _yaml(replace: str, by: str) -> Setup:
    def setup(task: Path) -> list[str]:
        assert replace in TASK_YAML
        task.write_text(TASK_YAML.replace(replace, by), encoding="utf-8")
        return []

    return setup


def _train_bytes(data: bytes) -> Setup:
    def setup(task: Path) -> list[str]:
        (task.parent / "data" / "train.jsonl").write_bytes(data)
        return []

    return setup


def _train_rows(*rows: tuple[str, str]) -> Setup:
    def setup(task: Path) -> list[str]:
        write_jsonl(task.parent / "data" / "train.jsonl", [*SENTIMENT_TRAIN, *rows])
        return []

    return setup


def _missing_task(task: Path) -> list[str]:
    task.unlink()
    return []


GOOD_LINE = b'{"input": "I love it", "output": "positive"}\n'

BAD_INPUTS: dict[str, tuple[Setup, str]] = {
    "unknown-key": (
        _yaml("model: scripted:test\n", "model: scripted:test\ncolour: blue\n"),
        "colour",
    ),
    "missing-objective": (
        _yaml("  objective: Classify the sentiment of one product review sentence.\n", ""),
        "contract.objective",
    ),
    "malformed-json": (_train_bytes(GOOD_LINE + b'{"input": "x", "output": \n'), "train.jsonl:2"),
    "label-outside-set": (_train_rows(("meh", "lukewarm")), "lukewarm"),
    "empty-input": (_train_rows(("   ", "neutral")), "empty"),
    "undecodable-bytes": (
        _train_bytes(GOOD_LINE + b'{"input": "caf\xe9", "output": "neutral"}\n'),
        "UTF-8",
    ),
    "empty-data-file": (_train_bytes(b""), "empty"),
    "missing-task-file": (_missing_task, "no such task file"),
    "unknown-strategy": (lambda task: ["--strategies", "bogus"], "bogus"),
    "unknown-model": (lambda task: ["--model", "no-such-model"], "no-such-model"),
    "bad-limit": (lambda task: ["--limit", "some"], "--limit"),
    "zero-limit": (lambda task: ["--limit", "0"], "--limit"),
    "bad-test-sample": (
        _yaml("  test: data/test.jsonl\n", "  test: data/test.jsonl\n  test_sample: 0\n"),
        "data.test_sample",
    ),
}


def assert_one_error_line(result, needle: str) -> None:  # type: ignore[no-untyped-def]
    stderr = plain(result.stderr)
    assert result.exit_code == 2, result.output
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error:"), lines[0]
    assert needle in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(
    case: str, scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    setup, needle = BAD_INPUTS[case]
    extra = setup(tiny_task)
    out = tmp_path / "runs"
    result = invoke("run", tiny_task, "--out", out, *extra)
    assert_one_error_line(result, needle)
    assert run_folders(out) == []
    assert scripted.calls == []


def test_report_without_results_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = invoke("report", tmp_path)
    assert_one_error_line(result, "results.json")


def test_report_with_broken_results_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "results.json").write_text("{\n  oops\n}\n")
    assert_one_error_line(invoke("report", tmp_path), "results.json:2")


@pytest.mark.parametrize("label", ["[/x]", "[bold]"])
def test_error_text_is_printed_literally(
    label: str, scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    _train_rows(("meh", label))(tiny_task)
    result = invoke("run", tiny_task, "--out", tmp_path / "runs")
    assert_one_error_line(result, f"'{label}'")
