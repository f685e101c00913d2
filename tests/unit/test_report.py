"""The run report: report.html (self-contained, escaped, with inline SVG plots) and report.md,
rendered from a real scripted run, with and without the optional results blocks."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import TEXT_TASK, ScriptedBackend, measure, read_run, write_jsonl

import tunewise.report as report_module
from tunewise.models.backend import Message
from tunewise.records.results import write_run
from tunewise.report import render_html, render_markdown, write_report
from tunewise.report.markdown import escape
from tunewise.report.worst import worst_errors

SCRIPT = "<script>alert(1)</script>"
TEXT_TRAIN = [(f"What is the capital of country {i}?", f"City {i}") for i in range(10)]
TEXT_TEST = [
    ("What is the capital of France?", "Paris"),
    (SCRIPT, "nothing"),
    ("Which pipe is it?", "left | right"),
]
# Resource references that would make the page depend on the network.
REMOTE = re.compile(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", re.I)


def text_rule(messages: Sequence[Message]) -> str:
    question = messages[-1]["content"].lower()
    if "script" in question:
        return "<b>bold</b>"
    if "pipe" in question:
        return "left | middle"
    return "Paris" if "france" in question else "unknown"


def text_run(folder: Path, backend: ScriptedBackend) -> Path:
    """A written run of a small text task whose test data holds markup."""
    write_jsonl(folder / "task" / "data" / "train.jsonl", TEXT_TRAIN)
    write_jsonl(folder / "task" / "data" / "test.jsonl", TEXT_TEST)
    (folder / "task" / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
    backend.rule = text_rule
    return write_run(measure(folder / "task" / "task.yaml"), folder / "runs")


@pytest.fixture
def run_dir(scripted: ScriptedBackend, tmp_path: Path) -> Path:
    return text_run(tmp_path, scripted)


@pytest.fixture
def written(run_dir: Path) -> tuple[str, str]:
    html_path, md_path = write_report(run_dir)
    return html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")


def with_optional_blocks(results: dict[str, Any]) -> dict[str, Any]:
    """The written results plus every optional block, as the coming results.json has them."""
    document = copy.deepcopy(results)
    tuned = document["candidates"][1]
    tuned.update(strategy="lora", family="fine-tuning", trains=True, effort="High")
    tuned.update(setup={"seconds": 321.0})
    for i, candidate in enumerate(document["candidates"]):
        candidate["cost"] = {
            "compute_seconds_per_request": 0.5 + i,
            "per_request": {"usd": 0.001 / (i + 1), "basis": "compute", "detail": "x"},
            "per_1000_requests_usd": 1.0 / (i + 1),
            "setup": {"usd": 5.0 * i, "basis": "compute", "detail": "y"},
            "monthly_usd": 1.0 / (i + 1),
            "horizon_usd": 5.0 * i + 6.0 / (i + 1),
            "setup_seconds": 321.0 * i,
        }
        metric = {"value": 0.5, "ci_low": 0.25, "ci_high": 0.75, "n": 4}
        candidate["freshness"] = {
            "examples": 4,
            "retrieves_updated_documents": i == 0,
            "metrics": {"token_f1": metric, "stale_rate": {**metric, "value": 0.125}},
        }
    document["candidates"][0]["consistency"] = {
        "format_validity": {"value": 0.9, "ci_low": 0.8, "ci_high": 1.0, "n": 3},
        "redraws": 5,
        "spread": {"min": 0.4, "max": 0.6, "std": 0.05},
        "agreement": {"value": 0.85, "ci_low": 0.7, "ci_high": 0.95, "n": 3},
    }
    document["break_even"] = [
        {"tuned": tuned["name"], "prompt": "zero-shot", "basis": "usd", "requests": 10000.0,
         "months": 2.5, "within_horizon": True, "detail": "pays for itself"},
        {"tuned": tuned["name"], "prompt": "other", "basis": "usd", "requests": None,
         "months": None, "within_horizon": False, "detail": "never"},
    ]  # fmt: skip
    points = [{"examples": x, "value": v, "ci_low": v - 0.1, "ci_high": v + 0.1, "n": 3}
              for x, v in ((50, 0.3), (100, 0.45), (200, 0.55), (400, 0.6))]  # fmt: skip
    document["learning_curve"] = {
        "candidate": tuned["name"], "ceiling": 0.7, "scale": 2.0, "rate": 0.5, "points": points,
        "target": 0.5, "examples_needed": 180, "examples_needed_low": 120,
        "examples_needed_high": 400, "reachable": "likely", "summary": "about 180 examples",
        "ceiling_low": 0.6, "ceiling_high": 0.8, "metric": "token_f1",
    }  # fmt: skip
    return document


def test_write_report_writes_both_files_atomically(run_dir: Path) -> None:
    html_path, md_path = write_report(run_dir)
    assert (html_path, md_path) == (run_dir / "report.html", run_dir / "report.md")
    assert html_path.stat().st_size > 0 and md_path.stat().st_size > 0
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == ["predictions.jsonl", "report.html", "report.md", "results.json", "task.json"]
    assert write_report(run_dir) == (html_path, md_path)  # a rewrite replaces, leaves no temp


def test_a_failed_render_writes_nothing(run_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(results: dict[str, Any], predictions: list[dict[str, Any]]) -> str:
        raise RuntimeError("boom")

    for written_by_the_run in run_dir.glob("report.*"):
        written_by_the_run.unlink()
    monkeypatch.setattr(report_module, "render_markdown", broken)
    with pytest.raises(RuntimeError, match="boom"):
        write_report(run_dir)
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "predictions.jsonl",
        "results.json",
        "task.json",
    ]


def test_dataset_text_and_model_output_are_escaped(written: tuple[str, str]) -> None:
    html, _ = written
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html
    assert "<script" not in html.lower()
    assert "<b>bold" not in html


def test_html_is_self_contained_with_inline_svg(written: tuple[str, str]) -> None:
    html, _ = written
    assert html.count("<svg") >= 2  # quality against cost, latency
    assert not REMOTE.search(html)
    assert "<link" not in html and "@import" not in html
    assert not re.search(r"url\(\s*['\"]?(?!#)", html)  # only in-page references, url(#clip)
    assert "<?xml" not in html and "<metadata>" not in html
    ids = re.findall(r'<[^>]*\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs share the page without id clashes
    refs = re.findall(r'url\(#([^)]+)\)|href="#([^"]+)"', html)
    assert {a or b for a, b in refs} <= set(ids)


def test_html_sections_follow_the_framework(written: tuple[str, str], run_dir: Path) -> None:
    html, _ = written
    results, _ = read_run(run_dir)
    headings = re.findall(r"<h2>(.*?)</h2>", html)
    expected = [
        "The decision",
        "The ladder",  # no candidates pinned: the run walked the four steps
        "Plots",
        "Candidates",
        "Fine-tuning vs prompting, criterion by criterion",
        "Risk checks",  # tunewise check runs with every run
        "Validation and repair",  # a generated-text task: answers go through the repair loop
        "Worst errors",
    ]
    assert headings == expected
    assert results["run_id"] in html and results["data"]["hash"][:12] in html
    assert f"Recommended: {results['recommendation']['candidate'] or 'none yet'}" in html
    for row in ("Initial cost", "Operating cost", "Implementation time", "Flexibility"):
        assert f'<th scope="row">{row}</th>' in html
    assert "edit the prompt" in html and "not probed" in html and "Low" in html
    assert "compute seconds per 1,000 requests" in html  # the run has no prices


def test_markdown_has_the_tables_and_escapes_cells(written: tuple[str, str]) -> None:
    _, md = written
    assert "| --- |" in md
    assert "| Initial cost |" in md and "| Technical difficulty |" in md
    assert re.search(r"^\|   \| zero-shot \| few-shot \|$", md, re.M)
    assert "left \\| middle" in md and "left \\| right" in md
    assert "\\<script>alert(1)\\</script>" in md and "\\<b>bold\\</b>" in md
    assert "report.html has the plots" in md
    assert "<svg" not in md


def test_escape_keeps_markdown_literal() -> None:
    assert escape("a | b\nc") == "a \\| b c"
    assert escape("[x](http://e)") == "[x]\\(http://e)"
    assert escape("0.5 [0.4, 0.6]") == "0.5 [0.4, 0.6]"


def test_a_candidate_name_cannot_inject_markup_through_the_svg(run_dir: Path) -> None:
    results, predictions = read_run(run_dir)
    evil = "<script>alert('svg')</script>$x^2$"
    results["candidates"][0]["name"] = evil
    for line in predictions:
        if line["candidate"] == "zero-shot":
            line["candidate"] = evil
    html = render_html(results, predictions)
    svgs = re.findall(r"<svg.*?</svg>", html, re.S)
    assert svgs and any("&lt;script&gt;alert(" in svg for svg in svgs)
    assert any("$x^2$" in svg for svg in svgs)  # shown as typed, not parsed as mathtext
    assert "<script" not in html.lower()


def test_optional_blocks_absent_render_gracefully(run_dir: Path) -> None:
    results, predictions = read_run(run_dir)
    for candidate in results["candidates"]:
        candidate.pop("cost")
        candidate.pop("freshness")
        candidate.pop("status")  # runs from before the status field
    results.update(learning_curve=None, break_even=None)
    html, md = render_html(results, predictions), render_markdown(results, predictions)
    assert "Break-even" not in html and "Freshness" not in html
    assert html.count("<svg") == 1  # latency only: no cost, no curve
    assert "not probed" in md and "zero-shot" in md


def test_optional_blocks_present_are_rendered(run_dir: Path) -> None:
    results, predictions = read_run(run_dir)
    full = with_optional_blocks(results)
    html, md = render_html(full, predictions), render_markdown(full, predictions)
    titles = ["Quality against cost", "Learning curve", "Cumulative cost over the horizon"]
    assert html.count("<svg") == 4 and all(f"<h3>{t}</h3>" in html for t in titles)
    assert "USD per 1,000 requests" in html and "cumulative USD" in html
    assert "break-even few-shot vs zero-shot" in html
    assert "<h2>Freshness</h2>" in html and "stale rate 0.125" in html
    for text in ("retrain: 321.0 s measured", "High", "agreement 0.850", "across 5 re-draws"):
        assert text in html and text in md
    assert "### Break-even" in md and "| never |" in md
    assert "$1.00 per 1,000 requests" in md and "about 180 examples" in md
    assert not REMOTE.search(html)


def test_label_errors_are_the_incorrect_answers(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    results, predictions = read_run(write_run(measure(tiny_task), tmp_path / "runs"))
    wrong = [p for p in predictions if p["candidate"] == "zero-shot" and not p["scores"]["correct"]]
    shown = worst_errors("label", "zero-shot", predictions)
    assert [e.example_id for e in shown] == [p["example_id"] for p in wrong[:5]]
    assert all(e.score == "correct 0.00" for e in shown)
    assert "tiny-sentiment" in render_markdown(results, predictions)


def line(output: str, token_f1: float, contains: float, split: str = "test") -> dict[str, Any]:
    scores = {"exact_match": 0.0, "token_f1": token_f1, "contains_answer": contains, "valid": 1.0}
    return {"candidate": "c", "split": split, "example_id": output, "input": "q" * 500,
            "reference": "r", "output": output, "scores": scores, "sources": ["d#0"]}  # fmt: skip


def test_text_errors_sort_by_token_f1_then_contains_answer() -> None:
    lines = [
        line("good", 1.0, 1.0),
        line("b", 0.2, 1.0),
        line("a", 0.2, 0.0),
        line("stale", 0.0, 0.0, split="updates"),
        *(line(f"z{i}", 0.5, 1.0) for i in range(5)),
    ]
    shown = worst_errors("text", "c", lines)
    assert [e.output for e in shown] == ["a", "b", "z0", "z1", "z2"]
    assert len(shown[0].input) == 300 and shown[0].input.endswith("…")
    assert shown[0].sources == ["d#0"]


def test_predictions_file_is_read_line_by_line(run_dir: Path) -> None:
    lines = (run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert report_module.read_predictions(run_dir / "predictions.jsonl") == [
        json.loads(text) for text in lines
    ]
