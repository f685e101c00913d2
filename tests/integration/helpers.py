"""Integration helpers: homes sharing one converted model; the CLI run as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path


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


_DESCRIBED = re.compile(
    r"(?P<name>[\w@.+:-]+): (?P<metric>\w+) (?P<value>\d+\.\d+) "
    r"\(95% CI (?P<low>\d+\.\d+)-(?P<high>\d+\.\d+), n=(?P<n>\d+)\)"
)
STEP_STRATEGIES = {
    1: {"zero-shot", "few-shot", "optimized-prompt"},
    2: {"rag"},
    3: {"lora", "qlora"},
    4: {"hybrid"},
}


def assert_decision_matches(results: dict) -> None:
    """The recommendation agrees with the measured numbers in the same results.json: every
    candidate figure quoted in its reasons, gates and alternatives is that candidate's metric,
    and the recommended candidate meets the target at the step its strategy belongs to."""
    recommendation = results["recommendation"]
    metrics = {c["name"]: c.get("metrics", {}) for c in results["candidates"]}
    texts = [
        *recommendation["reasons"],
        *recommendation["alternatives"],
        *(gate["detail"] for gate in recommendation["gates"]),
    ]
    quoted = [match for text in texts for match in _DESCRIBED.finditer(text)]
    assert quoted, "the recommendation quotes no measured figure"
    for match in quoted:
        measured = metrics[match["name"]][match["metric"]]
        # The text shows 3 decimals of the exact value; results.json keeps 4: allow both roundings.
        for key, field in (("value", "value"), ("ci_low", "low"), ("ci_high", "high")):
            assert abs(measured[key] - float(match[field])) <= 6e-4, (match.group(0), measured)
        assert measured["n"] == int(match["n"])
    chosen, target = recommendation["candidate"], results["task"]["target"]
    if chosen is not None and target is not None:
        entry = next(c for c in results["candidates"] if c["name"] == chosen)
        assert entry["metrics"][target["metric"]]["value"] >= target["min"]
        assert entry["strategy"] in STEP_STRATEGIES[recommendation["step"]]
    if recommendation["verdict"] == "target-missed":
        assert all(
            c["metrics"][target["metric"]]["value"] < target["min"]
            for c in results["candidates"]
            if c["status"] == "measured" and c["strategy"] in {"zero-shot", "few-shot", "rag"}
        )
