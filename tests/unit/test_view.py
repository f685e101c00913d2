"""`tunewise view` through FastAPI's TestClient: the runs table with its filters, one run, two
runs diffed, escaping of dataset markup, a run whose folder is gone, and the optional key."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import (
    SENTIMENT_TEST,
    SENTIMENT_TRAIN,
    TASK_YAML,
    ScriptedBackend,
    keyword_rule,
    measure,
    write_jsonl,
)
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tunewise.cli.main import app as cli_app
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.records.ledger import Ledger
from tunewise.records.results import write_run
from tunewise.view.viewer import LOOPBACK, create_app

SCRIPT = "<script>alert(1)</script> awful"
KEY = "view-key-5d1c9e7a"


@dataclass(frozen=True)
class Recorded:
    ledger: Path
    before: Path  # the task as written
    after: Path  # its objective edited: the scripted model then answers "neutral" to all
    other: Path  # a run of another task


def clone(folder: Path, run_id: str, task: str) -> Path:
    """A copy of a run folder under another run id and task name."""
    copy = folder.with_name(run_id)
    shutil.copytree(folder, copy)
    results = json.loads((copy / "results.json").read_text())
    results["run_id"], results["task"]["name"] = run_id, task
    results["created_at"] = "2020-01-01T00:00:00+00:00"
    (copy / "results.json").write_text(json.dumps(results))
    return copy


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorded]:
    """Made once for the module (the tests only read it): three runs in one ledger."""
    tmp_path = tmp_path_factory.mktemp("view")
    scripted = ScriptedBackend(keyword_rule({"great": "positive", "love": "positive",
                                             "awful": "negative"}, "neutral"))  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEWISE_HOME", str(tmp_path / "home"))
        register_backend("scripted", lambda rest: scripted)
        try:
            yield record_runs(scripted, tmp_path)
        finally:
            unregister_backend("scripted")


def record_runs(scripted: ScriptedBackend, tmp_path: Path) -> Recorded:
    task = tmp_path / "task"
    write_jsonl(task / "data" / "train.jsonl", SENTIMENT_TRAIN)
    write_jsonl(task / "data" / "test.jsonl", [*SENTIMENT_TEST, (SCRIPT, "negative")])
    (task / "task.yaml").write_text(TASK_YAML)
    strategies = ("zero-shot", "few-shot")
    before = write_run(measure(task / "task.yaml", strategies=strategies), tmp_path / "runs")
    text = (task / "task.yaml").read_text()
    (task / "task.yaml").write_text(text.replace("Classify the sentiment", "Summarise"))
    rule = scripted.rule
    scripted.rule = lambda m: "neutral" if "Summarise" in m[0]["content"] else rule(m)
    after = write_run(measure(task / "task.yaml", strategies=strategies), tmp_path / "runs")
    other = clone(before, "old-run-of-another-task", "another-task")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        for folder in (before, after, other):
            ledger.record(folder)
    return Recorded(tmp_path / "ledger.sqlite", before, after, other)


def client(recorded: Recorded, **options: object) -> TestClient:
    return TestClient(create_app(recorded.ledger, **options))  # type: ignore[arg-type]


def test_runs_page_lists_every_run_with_its_decision_and_intervals(recorded: Recorded) -> None:
    page = client(recorded).get("/")
    assert page.status_code == 200
    for folder in (recorded.before, recorded.after, recorded.other):
        assert f'href="/runs/{folder.name}"' in page.text
        assert f'name="a" value="{folder.name}"' in page.text  # pickable for the diff
    assert "zero-shot (step 1)" in page.text  # the recommendation of the first run
    assert "accuracy" in page.text and "zero-shot: 0.857 [" in page.text
    assert "script-src" not in page.headers["content-security-policy"]  # no script at all
    assert "<script" not in page.text


def test_filters_are_applied_by_the_server(recorded: Recorded) -> None:
    viewer = client(recorded)
    by_task = viewer.get("/", params={"task": "another-task"}).text
    assert recorded.other.name in by_task and recorded.before.name not in by_task
    by_candidate = viewer.get("/", params={"candidate": "few-shot"}).text
    assert "few-shot: 0." in by_candidate and "zero-shot: 0." not in by_candidate
    by_metric = viewer.get("/", params={"metric": "macro_f1"}).text
    assert "macro_f1 per candidate" in by_metric
    assert viewer.get("/", params={"metric": "rouge_l"}).text.count('href="/runs/') == 0
    searched = viewer.get("/", params={"q": "ANOTHER-task"}).text
    assert searched.count('href="/runs/') == 1 and recorded.other.name in searched
    assert "No recorded run matches" in viewer.get("/", params={"q": "zzz"}).text


def test_run_page_shows_candidates_costs_decision_and_plots(recorded: Recorded) -> None:
    viewer = client(recorded)
    page = viewer.get(f"/runs/{recorded.before.name}").text
    assert "Recommended: zero-shot" in page and "Prompting meets the target" in page
    assert "0.857 [" in page and "compute s / request" in page and "latency p50 (ms)" in page
    assert page.count("<svg") >= 2  # the report's plots, inline
    assert f'href="/runs/{recorded.before.name}/report.html"' in page
    report = viewer.get(f"/runs/{recorded.before.name}/report.html")
    assert report.status_code == 200 and "tunewise report: tiny-sentiment" in report.text


def test_diff_shows_changes_significance_and_escaped_flips(recorded: Recorded) -> None:
    query = {"a": recorded.before.name, "b": recorded.after.name}
    page = client(recorded).get("/diff", params=query)
    assert page.status_code == 200
    assert "prompt: contract.objective changed" in page.text
    assert "mcnemar" in page.text and "0.857" in page.text
    assert "Broken: 4" in page.text and "Fixed: 0" in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; awful" in page.text  # shown as text...
    assert "<script" not in page.text  # ...never as markup
    only = client(recorded).get("/diff", params={**query, "candidate": "few-shot"}).text
    assert "<h2>few-shot</h2>" in only and "<h2>zero-shot</h2>" not in only
    unshared = client(recorded).get("/diff", params={**query, "candidate": "lora"})
    assert unshared.status_code == 400 and "not measured in both runs" in unshared.text


def test_a_run_whose_folder_is_gone_gets_a_message(recorded: Recorded, tmp_path: Path) -> None:
    gone = clone(recorded.before, "gone-run", "tiny-sentiment")
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.record(gone)
        ledger.record(recorded.after)
    shutil.rmtree(gone)
    viewer = TestClient(create_app(tmp_path / "ledger.sqlite"))
    listed = viewer.get("/")
    assert listed.status_code == 200 and "folder missing" in listed.text
    page = viewer.get("/runs/gone-run")
    assert page.status_code == 200
    assert "is gone (moved or deleted)" in page.text and "The ledger still has" in page.text
    assert "0.857 [" in page.text  # the metrics the ledger kept
    diff = viewer.get("/diff", params={"a": "gone-run", "b": recorded.after.name})
    assert diff.status_code == 404 and "is gone" in diff.text
    report = viewer.get("/runs/gone-run/report.html")
    assert report.status_code == 404 and "tunewise report" in report.text


def test_unknown_runs_and_bad_queries_get_a_page_not_a_traceback(recorded: Recorded) -> None:
    viewer = client(recorded)
    unknown = viewer.get("/runs/no-such-run")
    assert unknown.status_code == 404 and "No run &#39;no-such-run&#39; is recorded" in unknown.text
    # A run is named by its id in the ledger only, never by a path to read.
    assert viewer.get(f"/runs/{recorded.before.parent}").status_code == 404
    assert viewer.get("/diff", params={"a": recorded.before.name}).status_code == 400
    assert viewer.get("/", params={"page": "0"}).status_code == 400
    assert viewer.get("/nowhere").status_code == 404


def test_a_key_guards_every_request(recorded: Recorded) -> None:
    viewer = client(recorded, api_key=KEY)
    for path in ("/", f"/runs/{recorded.before.name}", "/diff", "/health"):
        assert viewer.get(path).status_code == 401
    assert viewer.get("/", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert viewer.get("/", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert viewer.get("/", params={"token": "wrong"}).status_code == 401
    # ?token= once: a session cookie (not the key) and the same page without the key in its URL.
    login = viewer.get("/", params={"token": KEY, "task": "tiny-sentiment"}, follow_redirects=False)
    assert login.status_code == 303 and login.headers["location"] == "/?task=tiny-sentiment"
    assert KEY not in login.headers["set-cookie"] and "HttpOnly" in login.headers["set-cookie"]
    assert viewer.get(login.headers["location"]).status_code == 200  # the cookie is kept
    assert viewer.get(f"/runs/{recorded.before.name}").status_code == 200
    assert client(recorded, api_key=KEY).get("/").status_code == 401  # a new browser: no cookie


def test_a_loopback_viewer_answers_only_to_loopback_names(recorded: Recorded) -> None:
    guarded = create_app(recorded.ledger, allowed_hosts=LOOPBACK)
    assert TestClient(guarded, base_url="http://evil.example").get("/").status_code == 400
    assert TestClient(guarded, base_url="http://127.0.0.1:8321").get("/").status_code == 200
    assert TestClient(guarded, base_url="http://localhost:8321").get("/").status_code == 200


def test_empty_ledger_says_how_runs_get_there(tmp_path: Path) -> None:
    page = TestClient(create_app(tmp_path / "ledger.sqlite")).get("/")
    assert page.status_code == 200 and "No runs recorded yet" in page.text


def test_the_command_needs_its_key_variable_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TUNEWISE_VIEW_TEST_KEY", raising=False)
    result = CliRunner().invoke(cli_app, ["view", "--api-key-env", "TUNEWISE_VIEW_TEST_KEY"])
    assert result.exit_code == 2
    assert "--api-key-env TUNEWISE_VIEW_TEST_KEY: the variable is not set" in result.output
