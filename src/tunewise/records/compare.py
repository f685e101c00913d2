"""Two runs of a task side by side: what changed between them, which examples flipped, whether
each per-example metric moved beyond noise (paired tests), and the regression gate.

Pure functions over run folders' files (results.json, task.json, predictions.jsonl); the ledger
only finds the folders.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.evaluation.paired import PairedTest, paired_test
from tunewise.schemas import run_file
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import RunRecord

# Per-example score keys (predictions.jsonl "scores") under the metric names results.json uses.
SCORE_METRICS = {"correct": "accuracy", "valid": "format_validity"}
ALPHA = 0.05


@dataclass(frozen=True)
class RunFiles:
    """A run folder's documents."""

    folder: Path
    results: RunRecord
    task: dict[str, Any] | None  # task.json; None for runs written before it existed
    predictions: list[dict[str, Any]]

    @property
    def run_id(self) -> str:
        return self.results.run_id

    def candidate(self, name: str) -> CandidateRecord | None:
        return self.results.candidate(name)

    def scores(self, name: str) -> dict[str, dict[str, Any]]:
        """Test-split lines of one candidate, by example id."""
        return {
            p["example_id"]: p
            for p in self.predictions
            if p["candidate"] == name and p.get("split", "test") == "test"
        }


def read_run(folder: Path) -> RunFiles:
    """A run folder's files, or an error naming what is missing."""
    results = run_file.read_run(folder)
    try:
        lines = (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    except FileNotFoundError as missing:
        raise TunewiseError(
            f"{missing.filename}: no such file; pass a runs/<run-id> folder"
        ) from None
    task_file = folder / "task.json"
    task = json.loads(task_file.read_text(encoding="utf-8")) if task_file.exists() else None
    return RunFiles(folder, results, task, [json.loads(line) for line in lines if line.strip()])


def prompt_hash(run: RunFiles, name: str) -> str | None:
    """sha256 of what shapes a candidate's prompt: the task's contract and the candidate's
    settings (k, selection, retrieval, ...), model and name aside."""
    if run.task is None or name not in run.task["candidates"]:
        return None
    settings = {
        k: v for k, v in run.task["candidates"][name]["spec"].items() if k not in {"name", "model"}
    }
    blob = json.dumps([run.task["task"]["contract"], settings], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def changes(a: RunFiles, b: RunFiles, name: str) -> list[str]:
    """What differs between the runs for one candidate, in words."""
    found: list[str] = []
    ca, cb = a.candidate(name) or CandidateRecord(name), b.candidate(name) or CandidateRecord(name)

    def differ(label: str, x: Any, y: Any, short: bool = False) -> None:
        if x != y:
            show = (lambda v: str(v)[:12]) if short else str
            found.append(f"{label}: {show(x)} -> {show(y)}")

    differ("model", ca.model, cb.model)
    differ("weights", ca.model_fingerprint, cb.model_fingerprint, short=True)
    differ("adapter", ca.params.get("adapter"), cb.params.get("adapter"), short=True)
    if a.task and b.task:
        contract_a, contract_b = a.task["task"]["contract"], b.task["task"]["contract"]
        for key in sorted(set(contract_a) | set(contract_b)):
            if contract_a.get(key) != contract_b.get(key):
                found.append(f"prompt: contract.{key} changed")
        spec_a = a.task["candidates"].get(name, {}).get("spec", {})
        spec_b = b.task["candidates"].get(name, {}).get("spec", {})
        for key in sorted(set(spec_a) | set(spec_b)):
            if key != "name":
                differ(f"candidate setting {key}", spec_a.get(key), spec_b.get(key))
    differ("data", a.results.data.hash, b.results.data.hash, short=True)
    differ("code", a.results.code_version, b.results.code_version)
    differ("seed", a.results.seed, b.results.seed)
    return found


@dataclass(frozen=True)
class Flip:
    example_id: str
    direction: str  # "fixed" | "broken"
    input: str
    reference: str
    output_a: str
    output_b: str


@dataclass(frozen=True)
class CandidateDiff:
    candidate: str
    changes: list[str]
    metrics: dict[str, PairedTest]  # per-example metrics, paired over the shared examples
    flips: list[Flip]  # on the first right/wrong metric (accuracy, else exact match)
    shared_examples: int
    # Per metric, the shared examples scored lower in B (right -> wrong for right/wrong scores).
    lowered: dict[str, list[str]] = field(default_factory=dict)


def diff_runs(
    a: RunFiles, b: RunFiles, candidate: str | None = None, seed: int = 0
) -> list[CandidateDiff]:
    """Every candidate both runs measured (or just `candidate`), A -> B."""
    names_a = {c.name for c in a.results.measured()}
    names_b = {c.name for c in b.results.measured()}
    names = [c.name for c in a.results.candidates if c.name in names_a & names_b]
    if candidate is not None:
        if candidate not in names:
            raise TunewiseError(
                f"candidate '{candidate}' is not measured in both runs; "
                f"both have: {', '.join(names) or 'none'}"
            )
        names = [candidate]
    if not names:
        raise TunewiseError(f"runs {a.run_id} and {b.run_id} share no measured candidate")
    return [_diff_candidate(a, b, name, seed) for name in names]


def _diff_candidate(a: RunFiles, b: RunFiles, name: str, seed: int) -> CandidateDiff:
    lines_a, lines_b = a.scores(name), b.scores(name)
    shared = [example for example in lines_a if example in lines_b]
    metrics: dict[str, PairedTest] = {}
    lowered: dict[str, list[str]] = {}
    if shared:
        keys = [k for k in lines_a[shared[0]]["scores"] if k in lines_b[shared[0]]["scores"]]
        for key in keys:
            xs = [float(lines_a[e]["scores"][key]) for e in shared]
            ys = [float(lines_b[e]["scores"][key]) for e in shared]
            metric = SCORE_METRICS.get(key, key)
            metrics[metric] = paired_test(xs, ys, seed=seed)
            lowered[metric] = [e for e, x, y in zip(shared, xs, ys, strict=True) if y < x]
    flips: list[Flip] = []
    flip_key = next(
        (k for k in ("correct", "exact_match") if shared and k in lines_a[shared[0]]["scores"]),
        None,
    )
    for example in shared if flip_key else []:
        before, after = lines_a[example], lines_b[example]
        x, y = before["scores"][flip_key], after["scores"][flip_key]
        if x != y:
            flips.append(
                Flip(
                    example,
                    "fixed" if y > x else "broken",
                    before["input"],
                    before["reference"],
                    before["output"],
                    after["output"],
                )
            )
    return CandidateDiff(name, changes(a, b, name), metrics, flips, len(shared), lowered)


@dataclass(frozen=True)
class MetricCheck:
    """One metric of one candidate as the gate judged it."""

    candidate: str
    metric: str
    test: PairedTest
    regressed: bool


@dataclass(frozen=True)
class GateResult:
    passed: bool
    lines: list[str]  # one per checked metric, failures first
    checks: list[MetricCheck] = field(default_factory=list)  # in the diffs' order
    max_drop: float = 0.0
    alpha: float = ALPHA


def gate(diffs: list[CandidateDiff], max_drop: float, alpha: float = ALPHA) -> GateResult:
    """Fail when a metric drops by more than max_drop AND the drop is significant (p < alpha):
    a large drop on noise alone passes, and so does a small significant one."""
    failed, passed, checks = [], [], []
    for d in diffs:
        for metric, test in d.metrics.items():
            text = (
                f"{d.candidate} {metric}: {test.a:.3f} -> {test.b:.3f} ({test.delta:+.3f}, "
                f"p={test.p_value:.3g}, n={test.n})"
            )
            regressed = -test.delta > max_drop and test.p_value < alpha
            checks.append(MetricCheck(d.candidate, metric, test, regressed))
            if regressed:
                failed.append(f"FAIL {text}: a significant drop beyond {max_drop}")
            else:
                passed.append(f"ok   {text}")
    return GateResult(not failed, failed + passed, checks, max_drop, alpha)
