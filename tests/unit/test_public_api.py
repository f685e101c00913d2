"""The public API: `from tunewise import ...` runs a task end to end and reads the run back."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ScriptedBackend

import tunewise
from tunewise.errors import TunewiseError


def test_run_write_and_load_a_task(
    scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    from tunewise import load_run, load_task, run_task, write_run

    result = run_task(load_task(tiny_task))  # default options: the ladder
    folder = write_run(result, tmp_path / "runs")
    document = load_run(folder)
    assert document["recommendation"]["candidate"] == result.recommendation.candidate
    assert document["recommendation"]["next_step"]["command"]
    assert document["ladder"]["steps"][0]["title"] == "prompting"
    # The plan it started from, and step 1's estimate beside what it cost.
    planned = document["ladder"]["plan"]["steps"][0]
    assert planned["title"] == "prompting" and planned["full_seconds"] > 0
    assert planned["estimated_seconds"] > 0 and planned["actual_seconds"] > 0


def test_load_run_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(TunewiseError, match="no such file"):
        tunewise.load_run(tmp_path)
    (tmp_path / "results.json").write_text("{\n  broken")
    with pytest.raises(TunewiseError, match=r"results.json:2: not valid JSON"):
        tunewise.load_run(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps({"schema_version": 1}))
    with pytest.raises(TunewiseError, match="is a required property"):
        tunewise.load_run(tmp_path)


def test_importing_tunewise_loads_nothing_heavy() -> None:
    code = "import sys, tunewise; print('torch' in sys.modules, 'tunewise.run' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = tunewise.nothing  # type: ignore[attr-defined]
