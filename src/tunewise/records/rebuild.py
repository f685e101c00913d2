"""A measured candidate rebuilt from its run folder exactly as it was measured: the task as the
run used it (task.json), the same training data (checked by hash), the run's own adapter copy,
and the same document index. `tunewise serve` answers with it, `tunewise export` writes its
prompt.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from tunewise.core.catalog import parse_candidate, strategy_named
from tunewise.core.progress import SilentProgress
from tunewise.core.specs import CandidateSpec
from tunewise.errors import TunewiseError
from tunewise.home import tunewise_home
from tunewise.inference.predictor import Predictor
from tunewise.inference.serve import ServedCandidate, serving
from tunewise.models.registry import load_backend
from tunewise.retrieval.knowledge import load_knowledge
from tunewise.run import RunOptions, load_data
from tunewise.strategies.prepare import prepare_candidate
from tunewise.task.config import Task


def load_candidate(run_dir: Path, name: str) -> ServedCandidate:
    """Rebuild candidate `name` of the run in `run_dir`, ready to answer."""
    task, spec, predictor = rebuild_candidate(run_dir, name)
    return serving(name, task, spec, predictor)


def rebuild_candidate(run_dir: Path, name: str) -> tuple[Task, CandidateSpec, Predictor]:
    """Candidate `name` of the run in `run_dir` as it was measured (its model is not loaded
    yet): `tunewise serve` answers with it, `tunewise export` writes its prompt."""
    results, saved = _read(run_dir / "results.json"), _read(run_dir / "task.json")
    entries = {c["name"]: c for c in results["candidates"]}
    if name not in entries:
        raise TunewiseError(f"{run_dir}: no candidate '{name}'; the run has {', '.join(entries)}")
    entry = entries[name]
    if entry.get("status") != "measured":
        raise TunewiseError(
            f"candidate '{name}' was skipped in this run: {entry['skipped_reason']}"
        )
    task = Task.model_validate(saved["task"])
    spec = parse_candidate(saved["candidates"][name]["spec"])
    dataset, _ = load_data(task, RunOptions())
    if dataset.hash != results["data"]["hash"]:
        raise TunewiseError(
            f"the training data of {run_dir} changed since the run (hash {dataset.hash[:12]} vs "
            f"{results['data']['hash'][:12]}); re-run the task, then serve the new run"
        )
    index = None
    if strategy_named(spec.strategy).retrieves:
        # The index of the documents as they are now: the serving view of "current facts".
        plain = task.model_copy(update={"data": task.data.model_copy(update={"updates": None})})
        index = load_knowledge(plain, True, SilentProgress()).index
    _restore_adapter(run_dir, name, entry)
    dtype = entry["params"].get("dtype", "float32")  # as measured
    backend = load_backend(saved["candidates"][name]["model"], task.models, dtype=dtype)
    predictor = prepare_candidate(
        task,
        spec,
        train=dataset.train,
        backend=backend,
        name=name,
        progress=SilentProgress(),
        index=index,
    )
    return task, spec, predictor


def _read(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise TunewiseError(
            f"{path}: no such file; pass a runs/<run-id> folder written by this version"
        ) from None
    except json.JSONDecodeError as exc:
        raise TunewiseError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


def _restore_adapter(run_dir: Path, name: str, entry: dict[str, Any]) -> None:
    """Put the run's adapter copy back in the adapter cache, so nothing is retrained."""
    if "adapter" not in entry.get("setup", {}):
        return
    cached = tunewise_home() / "adapters" / entry["params"]["adapter"]
    if (cached / "training.json").exists():
        return
    source = run_dir / entry["setup"]["adapter"]
    if not (source / "training.json").exists():
        raise TunewiseError(f"{source}: the run's adapter copy is missing or incomplete")
    staging = cached.with_name(f".{cached.name}-{uuid.uuid4().hex}")
    shutil.copytree(source, staging)
    staging.rename(cached)
