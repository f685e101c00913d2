"""Strategies are registered once, in the catalog; a third-party one is one file plus an entry
point, and runs end to end like a built-in one (tests/plugins holds an installed one)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Literal

import pytest
from conftest import ScriptedBackend

from tunewise.core import catalog
from tunewise.core.catalog import Strategy, names_where, register_strategy, strategy_names
from tunewise.core.specs import CandidateSpec
from tunewise.errors import TaskError, TunewiseError
from tunewise.records.results import load_run, load_schema, write_run
from tunewise.run import RunOptions, run_task
from tunewise.task.loading import load_task, task_schema

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
BUILT_IN = (
    "zero-shot",
    "few-shot",
    "optimized-prompt",
    "rag",
    "lora",
    "qlora",
    "hosted-fine-tuning",
    "hybrid",
    "hosted-hybrid",
)


def test_the_families_and_sets_derive_from_one_record_per_strategy() -> None:
    assert strategy_names() == BUILT_IN
    assert names_where(family="prompting") == {"zero-shot", "few-shot", "optimized-prompt"}
    assert names_where(retrieves=True) == {"rag", "hybrid", "hosted-hybrid"}
    assert names_where(trains=True) == {
        "lora",
        "qlora",
        "hybrid",
        "hosted-fine-tuning",
        "hosted-hybrid",
    }
    assert [catalog.strategy_named(n).step for n in BUILT_IN] == [1, 1, 1, 2, 3, 3, 3, 4, 4]
    # Trained here, the methods need local weights; trained by a service, an endpoint for it.
    assert {n for n in BUILT_IN if "local-weights" in catalog.strategy_named(n).needs} == {
        "lora",
        "qlora",
        "hybrid",
    }
    assert {n for n in BUILT_IN if catalog.strategy_named(n).trains_remotely} == {
        "hosted-fine-tuning",
        "hosted-hybrid",
    }
    # The documented schema lists the built-in strategies; load_schema adds registered ones.
    text = (Path(catalog.__file__).parents[1] / "schemas" / "results.schema.json").read_text()
    documented = json.loads(text)["$defs"]["candidate"]["properties"]["strategy"]["enum"]
    assert tuple(documented) == BUILT_IN


def test_an_installed_strategy_runs_end_to_end(
    installed: None, scripted: ScriptedBackend, tiny_task: Path, tmp_path: Path
) -> None:
    # In step order: after the built-in prompting strategies, before RAG.
    assert strategy_names()[2:4] == ("optimized-prompt", "preamble")
    tiny_task.write_text(
        tiny_task.read_text()
        + "candidates:\n  - {strategy: zero-shot}\n"
        + "  - {strategy: preamble, preamble: 'Be terse.'}\n"
    )
    result = run_task(load_task(tiny_task), RunOptions())
    assert any("Be terse." in m[0]["content"] for m in scripted.calls)
    document = load_run(write_run(result, tmp_path / "runs"))  # valid against the schema
    (entry,) = [c for c in document["candidates"] if c["strategy"] == "preamble"]
    assert (entry["family"], entry["trains"], entry["params"]["preamble"]) == (
        "prompting",
        False,
        "Be terse.",
    )
    assert (
        "preamble" in load_schema("results")["$defs"]["candidate"]["properties"]["strategy"]["enum"]
    )
    assert "PreambleCandidate" in json.dumps(task_schema())
    # A pinned run of it by name, as --strategies passes it.
    pinned = run_task(load_task(tiny_task), RunOptions(strategies=("preamble",)))
    assert [c.strategy for c in pinned.candidates] == ["preamble"]


def test_an_installed_strategy_shows_in_the_cli(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(PLUGINS), *sys.path])}
    done = subprocess.run(
        [sys.executable, "-m", "tunewise", "run", "--help"],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "200"},
        check=True,
    )
    assert "optimized-prompt, preamble, rag" in " ".join(done.stdout.split())


def test_a_plugin_key_error_names_the_key(installed: None, tiny_task: Path) -> None:
    tiny_task.write_text(
        tiny_task.read_text() + "candidates:\n  - {strategy: preamble, preambel: x}\n"
    )
    with pytest.raises(TaskError, match=r"task.yaml:\d+: unknown key 'candidates.0.preambel'"):
        load_task(tiny_task)


def test_a_strategy_must_name_itself_in_its_spec() -> None:
    class Misnamed(CandidateSpec):
        strategy: Literal["other"]

    wrong = Strategy("mine", "prompting", Misnamed, "x:y", "", "Low")
    with pytest.raises(TunewiseError, match=r'Misnamed.strategy must be Literal\["mine"\]'):
        register_strategy(wrong)
    with pytest.raises(TunewiseError, match="registered twice"):
        register_strategy(catalog.strategy_named("rag"))
    with pytest.raises(TunewiseError, match="unknown strategy 'nope'; available: zero-shot"):
        catalog.strategy_named("nope")
