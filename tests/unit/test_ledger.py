"""The run ledger: migrations, recording, listing, approval; kill -9 and concurrent writers;
diff and the regression gate on prepared runs; a prompt edit end to end through the CLI."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedBackend, measure
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.errors import TunewiseError
from tunewise.records.compare import diff_runs, gate, read_run
from tunewise.records.ledger import MIGRATIONS, Ledger
from tunewise.records.results import write_run


def prepared_run(
    out: Path,
    run_id: str,
    correct: list[int],
    *,
    task: str = "tiny",
    objective: str = "Classify.",
    created: str = "2026-11-01T00:00:00+00:00",
) -> Path:
    """A minimal run folder whose one candidate got `correct[i]` right on example i."""
    folder = out / run_id
    folder.mkdir(parents=True)
    accuracy = {"value": sum(correct) / len(correct), "ci_low": 0, "ci_high": 1, "n": len(correct)}
    results = {
        "run_id": run_id, "created_at": created, "code_version": "0.1.0", "seed": 0,
        "task": {"name": task, "hash": "t" * 64}, "data": {"hash": "d" * 64},
        "candidates": [{
            "name": "few-shot", "strategy": "few-shot", "model": "m", "status": "measured",
            "model_fingerprint": "w" * 64, "params": {},
            "metrics": {"accuracy": accuracy},
        }],
    }  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results))
    contract = {"objective": objective, "audience": "A.", "source_material": "S."}
    (folder / "task.json").write_text(
        json.dumps({"task": {"contract": contract}, "candidates": {"few-shot": {"spec": {"k": 8}}}})
    )
    lines = [
        {"candidate": "few-shot", "split": "test", "example_id": f"e{i}", "input": f"text {i}",
         "reference": "yes", "output": "yes" if ok else "no",
         "scores": {"correct": float(ok), "valid": 1.0}}
        for i, ok in enumerate(correct)
    ]  # fmt: skip
    (folder / "predictions.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    return folder


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    with Ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened


# ---- ledger ----------------------------------------------------------------------------------


def test_migrations_apply_in_order_once(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as first:
        assert first.applied_migrations() == [name for name, _ in MIGRATIONS]
    with Ledger(path) as again:  # nothing re-applied (it would fail: the tables exist)
        assert again.applied_migrations() == [name for name, _ in MIGRATIONS]


def test_record_list_filter_approve(ledger: Ledger, tmp_path: Path) -> None:
    a = prepared_run(tmp_path / "runs", "run-a", [1, 1, 0, 1])
    b = prepared_run(tmp_path / "runs", "run-b", [1, 1, 1, 1], created="2026-11-02T00:00:00+00:00")
    other = prepared_run(
        tmp_path / "runs", "run-c", [0, 1], task="other", created="2026-10-01T00:00:00+00:00"
    )
    for folder in (a, b, other):
        ledger.record(folder)
    ledger.record(a)  # re-recording replaces, never duplicates
    assert [r.run_id for r in ledger.runs()] == ["run-b", "run-a", "run-c"]
    assert [r.run_id for r in ledger.runs(task="tiny")] == ["run-b", "run-a"]
    assert ledger.runs(candidate="lora") == []
    assert ledger.runs(task="tiny")[1].candidates[0]["metrics"]["accuracy"]["value"] == 0.75
    with pytest.raises(TunewiseError, match="no approved run of task 'tiny'"):
        ledger.approved("tiny")
    ledger.approve(a)
    assert ledger.approved("tiny") == a.resolve()
    assert ledger.resolve("run-b") == b.resolve()
    with pytest.raises(TunewiseError, match="neither a run folder nor a run id"):
        ledger.resolve("run-zzz")
    assert [r.approved for r in ledger.runs(task="tiny")] == [False, True]


WRITER = """
import sys
from pathlib import Path
from tunewise.records.ledger import Ledger
ledger = Ledger(Path(sys.argv[1]))
folders = sorted(Path(sys.argv[2]).iterdir())
print("ready", flush=True)
while True:
    for folder in folders:
        ledger.record(folder)
"""


def big_runs(out: Path, count: int, size: int) -> None:
    for n in range(count):
        prepared_run(out, f"run-{n:02d}", [n % 2] * size)


def assert_whole(path: Path, size: int) -> int:
    """Every run in the ledger has all its outcomes; returns how many runs there are."""
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    runs = [row[0] for row in db.execute("SELECT run_id FROM runs")]
    for run_id in runs:
        n = db.execute("SELECT count(*) FROM outcomes WHERE run_id = ?", (run_id,)).fetchone()[0]
        assert n == size, (run_id, n)
    db.close()
    return len(runs)


def test_a_writer_killed_mid_write_leaves_whole_runs_only(tmp_path: Path) -> None:
    big_runs(tmp_path / "runs", 4, 3000)
    path = tmp_path / "ledger.sqlite"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(tmp_path / "runs")],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(1.5)  # well inside its loop of transactions
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert assert_whole(path, 3000) >= 1
    with Ledger(path) as reopened:  # usable after the crash
        reopened.record(tmp_path / "runs" / "run-00")
    assert_whole(path, 3000)


def test_two_processes_recording_at_once_lose_nothing(tmp_path: Path) -> None:
    big_runs(tmp_path / "one", 6, 500)
    for n in range(6):
        prepared_run(tmp_path / "two", f"other-{n:02d}", [1] * 500)
    path = tmp_path / "ledger.sqlite"
    script = WRITER.replace("while True:", "for _ in range(2):")
    writers = [
        subprocess.Popen([sys.executable, "-c", script, str(path), str(tmp_path / name)])
        for name in ("one", "two")
    ]
    assert [w.wait(timeout=120) for w in writers] == [0, 0]
    assert assert_whole(path, 500) == 12


# ---- diff and gate ---------------------------------------------------------------------------


def test_a_significant_drop_fails_the_gate_and_noise_passes(tmp_path: Path) -> None:
    base = read_run(prepared_run(tmp_path, "base", [1] * 60 + [0] * 20))
    dropped = read_run(prepared_run(tmp_path, "dropped", [1] * 40 + [0] * 40))  # 20 broken
    noisy = read_run(prepared_run(tmp_path, "noisy", [0] * 3 + [1] * 57 + [1] * 2 + [0] * 18))
    failed = gate(diff_runs(base, dropped), max_drop=0.01)
    assert not failed.passed
    assert failed.lines[0].startswith("FAIL few-shot accuracy: 0.750 -> 0.500")
    passed = gate(diff_runs(base, noisy), max_drop=0.01)  # 3 broken, 2 fixed: noise
    assert passed.passed
    # A drop within the tolerance passes even when significant.
    assert gate(diff_runs(base, dropped), max_drop=0.3).passed


def test_diff_lists_flips_and_what_changed(tmp_path: Path) -> None:
    a = read_run(prepared_run(tmp_path, "a", [1, 0, 1, 1], objective="Classify."))
    b = read_run(prepared_run(tmp_path, "b", [1, 1, 0, 1], objective="Classify it."))
    [d] = diff_runs(a, b)
    assert d.changes == ["prompt: contract.objective changed"]
    assert [(f.example_id, f.direction) for f in d.flips] == [("e1", "fixed"), ("e2", "broken")]
    assert d.metrics["accuracy"].test == "mcnemar"
    with pytest.raises(TunewiseError, match="not measured in both runs"):
        diff_runs(a, b, "lora")


# ---- through the CLI: a prompt edit, diffed and gated ----------------------------------------


def cli(*args: Any) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def test_editing_the_prompt_shows_in_diff_and_gate(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path, home: Path
) -> None:
    first = write_run(measure(tiny_task, strategies=("zero-shot",)), tmp_path / "runs")
    # The edited objective makes the scripted model answer "neutral" to everything.
    tiny_task.write_text(tiny_task.read_text().replace("Classify the sentiment", "Summarise"))
    rule = scripted.rule
    scripted.rule = lambda m: "neutral" if "Summarise" in m[0]["content"] else rule(m)
    second = write_run(measure(tiny_task, strategies=("zero-shot",)), tmp_path / "runs")

    shown = cli("diff", first, second)
    assert shown.exit_code == 0, shown.output
    assert "changed: prompt: contract.objective changed" in shown.output
    assert "broken: 3" in shown.output and "'I love it'" in shown.output
    assert "accuracy: 0.833 -> 0.333" in shown.output
    assert cli("approve", first).exit_code == 0
    listed = cli("runs", "--task", "tiny-sentiment")
    [line] = [x for x in listed.output.splitlines() if x.startswith(first.name)]
    assert "[approved]" in line and "zero-shot accuracy 0.833" in line
    gated = cli("gate", second, "--approved", "--max-drop", "0.01")
    assert gated.exit_code == 0, gated.output  # 3 flips of 6 examples: not significant
    assert cli("gate", second, "--baseline", first, "--alpha", "0.3").exit_code == 1  # p = 0.25
    assert cli("gate", second).exit_code == 2  # neither --baseline nor --approved
