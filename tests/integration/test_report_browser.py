"""report.html in a real browser (headless Chromium through playwright): it loads without console
errors, runs no script, and shows dataset markup as text. A scripted run is enough: the page,
not the model, is under test."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import TEXT_TASK, ScriptedBackend, measure, write_jsonl

from tunewise.models.backend import Message
from tunewise.records.results import write_run
from tunewise.report import write_report

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SCRIPT = "<script>alert(1)</script>"


def answer(messages: Sequence[Message]) -> str:
    return "<b>bold</b>" if "script" in messages[-1]["content"] else "Paris"


@pytest.fixture
def report_html(scripted: ScriptedBackend, tmp_path: Path) -> Path:
    train = [(f"What is the capital of country {i}?", f"City {i}") for i in range(10)]
    write_jsonl(tmp_path / "task" / "data" / "train.jsonl", train)
    test = [("What is the capital of France?", "Paris"), (SCRIPT, "nothing")]
    write_jsonl(tmp_path / "task" / "data" / "test.jsonl", test)
    (tmp_path / "task" / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
    scripted.rule = answer
    run_dir = write_run(measure(tmp_path / "task" / "task.yaml"), tmp_path / "runs")
    html_path, _ = write_report(run_dir)
    return html_path


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH")
def test_report_renders_in_chromium_without_running_script(
    report_html: Path, tmp_path: Path
) -> None:
    errors: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(report_html.as_uri(), wait_until="load")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            text = page.evaluate("document.body.innerText")
            scripts = page.evaluate("document.querySelectorAll('script').length")
            svgs = page.evaluate("document.querySelectorAll('svg').length")
            bold = page.evaluate("document.querySelectorAll('dd b').length")
        finally:
            browser.close()
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n") and shot.stat().st_size > 1000
    assert errors == []
    assert dialogs == []
    assert SCRIPT in text and "<b>bold</b>" in text  # shown as text...
    assert scripts == 0 and bold == 0  # ...never parsed as elements
    assert svgs >= 2


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH")
def test_label_report_shows_next_step_and_confusion_matrix(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    # The scripted model never answers "negative" for "the motor died": a class it misses.
    run_dir = write_run(measure(tiny_task), tmp_path / "runs")
    html_path, _ = write_report(run_dir)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(html_path.as_uri(), wait_until="load")
            next_step = page.locator("#next-step")
            confusion = page.locator("#confusion table").first
            assert next_step.is_visible() and confusion.is_visible()
            step_text = next_step.inner_text()
            matrix = confusion.inner_text()
            # The next step sits in the decision, above everything else the page shows.
            above = page.evaluate(
                "document.querySelector('#next-step').getBoundingClientRect().top"
                " < document.querySelector('#plots').getBoundingClientRect().top"
            )
        finally:
            browser.close()
    assert "Next step:" in step_text and "tunewise" in step_text
    assert "reference \\ predicted" in matrix and "(other)" in matrix
    assert all(label in matrix for label in ("positive", "negative", "neutral"))
    assert above
