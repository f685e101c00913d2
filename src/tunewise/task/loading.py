"""Reading task.yaml: YAML to a validated Task whose errors name the file, line and key, with
data paths resolved against the task's folder; and the task's hash and JSON Schema."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunewise.core.catalog import strategy_names
from tunewise.errors import TaskError
from tunewise.task.config import DataFiles, ExtraDataset, Task
from tunewise.task.error_messages import explain, key_lines
from tunewise.task.sources import is_hub
from tunewise.task.user_metric import UserMetricError, is_user_metric, load_user_metric


def union_tags() -> frozenset[str]:
    """The tags pydantic inserts in error locations after a union field (output_format, a
    candidate)."""
    return frozenset({"label", "json", "text", *strategy_names()})


def task_schema() -> dict[str, Any]:
    """JSON Schema of task.yaml, for editors and `tunewise schema`."""
    return Task.model_json_schema(by_alias=True)


def task_hash(task: Task) -> str:
    """sha256 of the task's canonical JSON. Data files count by name only: their content is in
    the data hash, and the same task must hash the same in any folder."""
    document = task.model_dump(mode="json", by_alias=True)
    files = document["data"]
    for key in ("train", "test", "documents", "unlabeled"):
        if files[key]:
            files[key] = _source_name(files[key])
    if files["updates"]:
        files["updates"] = {k: Path(v).name for k, v in files["updates"].items()}
    if document["judge"] and document["judge"]["grades"]:
        document["judge"]["grades"] = Path(document["judge"]["grades"]).name
    for extra in document["datasets"]:
        for key in ("train", "test"):
            if extra[key]:
                extra[key] = _source_name(extra[key])
    for entry in (files, *document["datasets"]):  # default columns hash as before they existed
        for key, default in COLUMN_DEFAULTS.items():
            if entry.get(key) == default:
                del entry[key]
    # So do keys added later, left unset: a task that uses none of them keeps its hash.
    later = [(document, "metrics", []), (document, "judge", None)]
    later += [(candidate, "prompt_file", None) for candidate in document["candidates"]]
    for entry, key, unset in later:
        if key in entry and entry[key] == unset:
            del entry[key]
    document.pop("training", None)  # where training runs; the adapter's key has what it changes
    blob = json.dumps(document, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


COLUMN_DEFAULTS = {"input_field": "input", "output_field": "output", "id_field": "id"}


def _source_name(source: str) -> str:
    """A file by its name; an hf: dataset by its whole name, which says what it is anywhere."""
    return source if is_hub(source) else Path(source).name


def load_task(path: str | Path) -> Task:
    """Read and validate a task file; relative data paths resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TaskError(f"{path}: no such task file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskError(f"{path}: cannot read task file ({exc})") from None
    try:
        raw = yaml.safe_load(text)
        lines = key_lines(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise TaskError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(raw, dict):
        raise TaskError(
            f"{path}: a task file must be a mapping of keys (name, contract, data, ...)"
        )
    try:
        task = Task.model_validate(raw)
    except ValidationError as exc:
        raise TaskError(explain(path, exc, lines, Task, union_tags())) from None
    task = _resolve_paths(task, path.parent)
    task._folder = path.parent.resolve()
    _locate_sources(task, path, lines)
    _check_user_metrics(task, path, lines)
    return task


def _check_user_metrics(task: Task, path: Path, lines: dict[tuple[str, ...], int]) -> None:
    """Every python: metric loads now, before data is read or a model is loaded."""
    named = [(("metrics", str(i)), name) for i, name in enumerate(task.metrics)]
    if task.target is not None and is_user_metric(task.target.metric):
        named.append((("target", "metric"), task.target.metric))
    for key, name in named:
        try:
            load_user_metric(name, task.folder)
        except UserMetricError as exc:
            line = lines.get(key) or lines.get(key[:1])
            where = f"{path}:{line}" if line else str(path)
            raise TaskError(f"{where}: {'.'.join(key)}: {exc}") from None


def _locate_sources(task: Task, path: Path, lines: dict[tuple[str, ...], int]) -> None:
    """Where each data source is written ("task.yaml:7: data.train"), for data errors."""
    entries = [
        (("data",), task.data),
        *((("datasets", str(i)), d) for i, d in enumerate(task.datasets)),
    ]
    for prefix, entry in entries:
        for key in ("train", "test"):
            line = lines.get((*prefix, key))
            where = f"{path}:{line}" if line else str(path)
            entry._where[key] = f"{where}: {'.'.join((*prefix, key))}"


def _resolve_paths(task: Task, base: Path) -> Task:
    def resolve(fields: dict[str, Any]) -> dict[str, Any]:
        return {
            key: (base / value).resolve()
            if isinstance(value, Path)
            else resolve(value)
            if isinstance(value, dict)
            else value
            for key, value in fields.items()
        }

    datasets = [ExtraDataset(**resolve(d.model_dump())) for d in task.datasets]
    data = DataFiles(**resolve(task.data.model_dump()))
    update: dict[str, Any] = {"data": data, "datasets": datasets}
    if task.judge is not None and task.judge.grades is not None:
        update["judge"] = task.judge.model_copy(
            update={"grades": (base / task.judge.grades).resolve()}
        )
    if task.training.accelerate_config is not None:
        config = (base / task.training.accelerate_config).resolve()
        update["training"] = task.training.model_copy(update={"accelerate_config": config})
    return task.model_copy(update=update)
