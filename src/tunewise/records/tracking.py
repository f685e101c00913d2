"""Log a written run to experiment trackers (MLflow, Weights & Biases, TensorBoard).

Everything is read from the run folder's results.json, so a run can be logged when it is written
(`tunewise run --log`) or any time later (`tunewise log`). This module turns the results into
one neutral record per candidate; each tracker's module only writes that record its own way.
The trackers are optional extras, imported only when used.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import RunRecord, read_run
from tunewise.schemas.run_sections import RecommendationRecord

# Tracker name -> (the module it needs, tunewise's module that writes to it).
TRACKERS: dict[str, tuple[str, str]] = {
    "mlflow": ("mlflow", "tunewise.records.tracking_mlflow"),
    "wandb": ("wandb", "tunewise.records.tracking_wandb"),
    "tensorboard": ("tensorboard", "tunewise.records.tracking_tensorboard"),
}
ARTIFACTS = ("results.json", "report.html")
# The training curve's per-step series (setup.training.loss_curve points).
CURVE_SERIES = ("train_loss", "validation_loss")

Param = str | int | float | bool


class TrackingError(TunewiseError):
    """A tracker is unknown, not installed, or refused the run."""


@dataclass(frozen=True)
class CandidateLog:
    """One candidate as every tracker logs it: flat params, flat numbers, the loss curve."""

    name: str
    params: dict[str, Param]
    metrics: dict[str, float]
    curve: tuple[tuple[int, dict[str, float]], ...]  # (step, {train_loss, validation_loss})
    tags: dict[str, str]


@dataclass(frozen=True)
class RunLog:
    """A written run, ready for a tracker."""

    run_id: str
    folder: Path
    out: Path  # the folder holding the run folder: default home of local logs
    started_ms: int
    ended_ms: int
    params: dict[str, Param]
    tags: dict[str, str]
    candidates: tuple[CandidateLog, ...]
    artifacts: tuple[Path, ...]
    summary: str  # the recommendation, as Markdown


def parse_trackers(value: str | None, flag: str = "--log") -> tuple[str, ...]:
    """'mlflow,wandb' -> ('mlflow', 'wandb'), each known and importable, so a missing extra
    fails before any work starts."""
    names = tuple(dict.fromkeys(p.strip() for p in (value or "").split(",") if p.strip()))
    for name in names:
        if name not in TRACKERS:
            raise TrackingError(f"{flag}: unknown tracker '{name}'; use {', '.join(TRACKERS)}")
        needed = TRACKERS[name][0]
        if importlib.util.find_spec(needed) is None:
            raise TrackingError(f"{flag} {name} needs {needed}: pip install 'tunewise[{name}]'")
    return names


def log_run(run_dir: Path, trackers: Sequence[str]) -> list[str]:
    """Log the run folder to each tracker; one line per tracker saying where it went. A tracker
    that fails does not stop the others; the failures are raised together at the end."""
    run = read_run_log(run_dir)
    where, failed = [], []
    for name in trackers:
        module = importlib.import_module(TRACKERS[name][1])
        write: Callable[[RunLog], str] = module.log
        try:
            where.append(f"{name}: {write(run)}")
        except TunewiseError as exc:
            failed.append(f"{name}: {exc}")
        except Exception as exc:  # the tracker's own error, e.g. a server that is down
            first = (str(exc).strip().splitlines() or [""])[0]
            failed.append(f"{name}: {type(exc).__name__}: {first}")
    if failed:
        retry = f"tunewise log {run_dir} --to {','.join(trackers)}"
        raise TrackingError(f"{'; '.join(failed)} (the run is saved; retry with `{retry}`)")
    return where


def read_run_log(run_dir: Path) -> RunLog:
    """The run folder's results.json (schema-checked) as trackers log it."""
    from tunewise.records.results import load_run

    run = read_run(load_run(run_dir))
    recommendation = run.recommendation or RecommendationRecord()
    tags = {
        "run_id": run.run_id,
        "task": str(run.task.name),
        "recommendation.candidate": str(recommendation.candidate or "none"),
        "recommendation.step": str(recommendation.step),
        "recommendation.verdict": str(recommendation.verdict),
    }
    params: dict[str, Param] = {
        "seed": run.seed or 0,
        "data_hash": str(run.data.hash),
        "task_hash": str(run.task.hash),
        "code_version": str(run.code_version),
    }
    ended = datetime.fromisoformat(str(run.created_at)).timestamp()
    return RunLog(
        run_id=run.run_id,
        folder=Path(run_dir),
        out=Path(run_dir).resolve().parent,
        started_ms=int((ended - (run.seconds or 0.0)) * 1000),
        ended_ms=int(ended * 1000),
        params=params,
        tags=tags,
        candidates=tuple(candidate_log(c, params, tags) for c in run.candidates),
        artifacts=tuple(p for p in (Path(run_dir) / a for a in ARTIFACTS) if p.is_file()),
        summary=summary(run),
    )


def candidate_log(
    candidate: CandidateRecord, run_params: dict[str, Param], run_tags: dict[str, str]
) -> CandidateLog:
    fixed = {"strategy": candidate.strategy, "model": str(candidate.model), **run_params}
    own = flat_params(candidate.params)
    # A candidate setting named like a run-level one (few-shot's seed) keeps its own value.
    params = {
        (f"params.{k}" if k in fixed else k): v
        for k, v in own.items()
        if not (k in fixed and fixed[k] == v)
    }
    params.update(fixed)
    training = candidate.setup.training or {}
    metrics: dict[str, float] = {}
    for name, figure in candidate.metrics.items():
        metrics[key(name)] = figure.value
        metrics[f"{key(name)}.ci_low"] = figure.ci_low
        metrics[f"{key(name)}.ci_high"] = figure.ci_high
    metrics.update(flat_numbers(asdict(candidate.usage), "usage"))
    metrics.update(flat_numbers(asdict(candidate.cost) if candidate.cost else {}, "cost"))
    metrics.update(flat_numbers({"seconds": candidate.setup.seconds}, "setup"))
    scalars = {k: v for k, v in training.items() if k not in {"loss_curve", "config"}}
    metrics.update(flat_numbers(scalars, "training"))
    recommended = run_tags["recommendation.candidate"] == candidate.name
    tags = {
        **run_tags,
        "candidate": candidate.name,
        "status": str(candidate.status),
        "recommended": str(recommended).lower(),
    }
    if candidate.skipped_reason:
        tags["skipped_reason"] = candidate.skipped_reason
    return CandidateLog(candidate.name, params, metrics, loss_curve(training), tags)


def loss_curve(training: Mapping[str, Any]) -> tuple[tuple[int, dict[str, float]], ...]:
    """The training record's evaluated points: (step, {train_loss, validation_loss})."""
    points = []
    for point in training.get("loss_curve") or []:
        values = {s: float(point[s]) for s in CURVE_SERIES if _number(point.get(s))}
        if values and isinstance(point.get("step"), int):
            points.append((point["step"], values))
    return tuple(sorted(points, key=lambda p: p[0]))


def flat_params(value: Mapping[str, Any], prefix: str = "") -> dict[str, Param]:
    """Nested settings as dotted keys; lists and nulls as JSON text (trackers take scalars)."""
    flat: dict[str, Param] = {}
    for name, item in value.items():
        path = f"{prefix}{key(str(name))}"
        if isinstance(item, Mapping):
            flat.update(flat_params(item, f"{path}."))
        elif isinstance(item, str | int | float | bool):
            flat[path] = item
        else:
            flat[path] = json.dumps(item, ensure_ascii=False, sort_keys=True)
    return flat


def flat_numbers(value: Mapping[str, Any], prefix: str) -> dict[str, float]:
    """The finite numbers of a nested block as dotted keys (text, flags and nulls left out)."""
    flat: dict[str, float] = {}
    for name, item in value.items():
        path = f"{prefix}.{key(str(name))}"
        if isinstance(item, Mapping):
            flat.update(flat_numbers(item, path))
        elif _number(item):
            flat[path] = float(item)
    return flat


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def key(name: str) -> str:
    """A key every tracker accepts (MLflow's rule: letters, digits, _ - . / and space), so a
    user metric `python:metrics:score` is `python_metrics_score` everywhere."""
    return re.sub(r"[^\w\-./ ]", "_", name)


def summary(run: RunRecord) -> str:
    """The recommendation in a few Markdown lines."""
    rec = run.recommendation or RecommendationRecord()
    chosen = rec.candidate or "no candidate"
    lines = [
        f"**{run.run_id}**: {chosen} (step {rec.step}, {rec.verdict}, metric {rec.metric})",
        "",
        *(f"- {reason}" for reason in rec.reasons),
    ]
    step = rec.next_step
    if step:
        command = f": `{step.command}`" if step.command else ""
        lines += ["", f"Next: {step.action}{command}"]
    return "\n".join(lines)
