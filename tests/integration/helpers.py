"""Integration helpers: homes sharing one converted model; the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tunewise.schemas.run_file import read_run


def fresh_home(converted_home: Path, tmp_path: Path) -> Path:
    """An empty response cache and adapter cache that share the already converted model."""
    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "models").symlink_to(converted_home / "models")
    return home


def environment(home: Path) -> dict[str, str]:
    return {**os.environ, "TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def tunewise(
    *args: str, home: Path, timeout: float = 600, fresh_process: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run the CLI as a user would: its commands, exit codes and output. In this process by
    default (torch and the embedders are imported once for the whole suite, about 5 s a run);
    `fresh_process` runs it as its own process, with nothing imported or cached."""
    if fresh_process:
        command = [sys.executable, "-m", "tunewise", *args]
        return subprocess.run(
            command, env=environment(home), capture_output=True, text=True, timeout=timeout
        )
    from typer.testing import CliRunner

    from tunewise.cli.main import app

    saved = {key: os.environ.get(key) for key in ("TUNEWISE_HOME", "HF_HUB_OFFLINE")}
    os.environ.update(TUNEWISE_HOME=str(home), HF_HUB_OFFLINE="1")
    try:
        result = CliRunner().invoke(app, list(args))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(list(args), result.exit_code, result.stdout, result.stderr)


STEP_STRATEGIES = {
    1: {"zero-shot", "few-shot", "optimized-prompt"},
    2: {"rag"},
    3: {"lora", "qlora"},
    4: {"hybrid"},
}


def assert_decision_matches(results: dict[str, Any] | Path) -> None:
    """The recommendation agrees with the measured numbers in the same results.json: every
    figure its reasons and gates quote (their evidence) is that candidate's metric exactly as
    measured, held against the task's target where it is held against one; the recommended
    candidate meets the target, by the figure its first reason quotes, at the step its strategy
    belongs to; and a missed target is missed by every prompting and RAG candidate."""
    run = read_run(results)
    recommendation, target = run.recommendation, run.task.target
    assert recommendation is not None
    quoted = [figure for _, figures in recommendation.explained() for figure in figures]
    quoted += [figure for gate in recommendation.gates for figure in gate.evidence]
    assert quoted, "the recommendation quotes no measured figure"
    for figure in quoted:
        candidate = run.candidate(figure.candidate)
        assert candidate is not None, figure
        measured = candidate.metrics[figure.metric]
        assert (figure.value, figure.ci_low, figure.ci_high, figure.n) == (
            measured.value, measured.ci_low, measured.ci_high, measured.n,
        ), (figure, measured)  # fmt: skip
        if figure.target is not None:
            assert target is not None and figure.target == target.min, figure
    names = [c.name for c in run.measured()]
    for alternative in recommendation.alternatives:
        assert any(alternative.startswith(f"{name}: {recommendation.metric} ") for name in names)
    chosen = recommendation.candidate
    if chosen is not None and target is not None:
        entry = run.candidate(chosen)
        assert entry is not None and entry.metrics[target.metric].value >= target.min
        assert entry.strategy in STEP_STRATEGIES[recommendation.step or 0]
        [first] = recommendation.explained()[0][1]  # "... meets the target: <figure> >= min"
        assert first.candidate == chosen and first.target is not None
        assert first.value >= first.target
    if recommendation.verdict == "target-missed":
        assert target is not None
        assert all(
            c.metrics[target.metric].value < target.min
            for c in run.measured()
            if c.strategy in {"zero-shot", "few-shot", "rag"}
        )
