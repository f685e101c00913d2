"""`tunewise view` as a user meets it: the real command serving on loopback, headless Chromium
(through playwright) clicking from the runs table to one run and on to the diff of two runs.
Scripted runs are enough: the pages, not the model, are under test."""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import (
    SENTIMENT_TEST,
    SENTIMENT_TRAIN,
    TASK_YAML,
    ScriptedBackend,
    measure,
    write_jsonl,
)

from tunewise.records.ledger import Ledger
from tunewise.records.results import write_run

pytestmark = pytest.mark.integration

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

SCRIPT = "<script>alert(1)</script> awful"
KEY = "view-browser-key-0b7e4d"
KEY_ENV = "TUNEWISE_VIEW_E2E_KEY"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def runs(scripted: ScriptedBackend, tmp_path: Path, home: Path) -> tuple[str, str]:
    """Two recorded runs of one task; the second's edited objective breaks four answers."""
    task = tmp_path / "task"
    write_jsonl(task / "data" / "train.jsonl", SENTIMENT_TRAIN)
    write_jsonl(task / "data" / "test.jsonl", [*SENTIMENT_TEST, (SCRIPT, "negative")])
    (task / "task.yaml").write_text(TASK_YAML)
    before = write_run(measure(task / "task.yaml"), tmp_path / "runs")
    text = (task / "task.yaml").read_text()
    (task / "task.yaml").write_text(text.replace("Classify the sentiment", "Summarise"))
    rule = scripted.rule
    scripted.rule = lambda m: "neutral" if "Summarise" in m[0]["content"] else rule(m)
    after = write_run(measure(task / "task.yaml"), tmp_path / "runs")
    with Ledger(home / "ledger.sqlite") as ledger:
        ledger.record(before)
        ledger.record(after)
    return before.name, after.name


@pytest.fixture
def viewer(runs: tuple[str, str], home: Path) -> Iterator[str]:
    """`tunewise view` in its own process over the home's ledger; yields its URL once up."""
    port = free_port()
    command = [sys.executable, "-m", "tunewise", "view", "--port", str(port)]
    env = {**os.environ, "TUNEWISE_HOME": str(home), KEY_ENV: KEY}
    env.pop("TUNEWISE_LEDGER", None)
    server = subprocess.Popen(
        [*command, "--api-key-env", KEY_ENV], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 401:
                    break  # up, and guarded
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the viewer did not start"
            time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=30)


def assert_not_blank(shot: Path) -> None:
    """A real PNG of a drawn page: a few KB at least, and more than a couple of colours."""
    from PIL import Image

    data = shot.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000, len(data)
    with Image.open(io.BytesIO(data)) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 20


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium or chromium-browser on PATH")
def test_click_from_runs_to_a_run_to_the_diff(
    viewer: str, runs: tuple[str, str], tmp_path: Path
) -> None:
    before, after = runs
    errors: list[str] = []
    dialogs: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))

            page.goto(f"{viewer}/?token={KEY}", wait_until="load")  # the key, once
            assert KEY not in page.url  # redirected away from the URL with the key
            page.screenshot(path=str(tmp_path / "runs.png"), full_page=True)
            runs_text = page.inner_text("main")

            page.click(f"a:text-is('{before}')")
            page.wait_for_url(f"**/runs/{before}")
            page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
            run_text = page.inner_text("main")
            plots = page.locator("figure svg").count()

            page.go_back()
            page.check(f"input[name=a][value='{before}']")
            page.check(f"input[name=b][value='{after}']")
            page.click("button:text('Compare A')")
            page.wait_for_url("**/diff?*")
            page.screenshot(path=str(tmp_path / "diff.png"), full_page=True)
            diff_text = page.inner_text("main")
            scripts = page.evaluate("document.querySelectorAll('script').length")
        finally:
            browser.close()

    for name in ("runs", "run", "diff"):
        assert_not_blank(tmp_path / f"{name}.png")
    assert errors == [] and dialogs == []
    assert before in runs_text and after in runs_text and "zero-shot (step 1)" in runs_text
    assert "Recommended: zero-shot" in run_text and "latency p50 (ms)" in run_text
    assert plots >= 2
    assert "prompt: contract.objective changed" in diff_text and "Broken: 4" in diff_text
    assert SCRIPT in diff_text and scripts == 0  # dataset markup shown as text, never run
