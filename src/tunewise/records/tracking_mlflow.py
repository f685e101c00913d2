"""MLflow: a parent run named after the tunewise run id, one child run per candidate.

The tracking URI is MLFLOW_TRACKING_URI, else a file store `mlruns` beside the run folder; the
experiment is MLFLOW_EXPERIMENT_NAME, else "tunewise".
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tunewise.records.tracking import CandidateLog, Param, RunLog

EXPERIMENT = "tunewise"
# MLflow's limits for one log_batch call and for a param's value.
METRICS_PER_BATCH, PARAMS_PER_BATCH, PARAM_CHARS, TAG_CHARS = 1000, 100, 6000, 8000


def log(run: RunLog) -> str:
    """Log the run; says where (the URI without any user:password in it)."""
    from mlflow.tracking import MlflowClient
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

    uri = os.environ.get("MLFLOW_TRACKING_URI") or (run.out / "mlruns").as_uri()
    name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or EXPERIMENT
    with _file_store_allowed(uri):
        client = MlflowClient(tracking_uri=uri)
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else client.create_experiment(name)
        tags = {**run.tags, "mlflow.note.content": run.summary}
        with _started(client, experiment, run, run.run_id, run.params, tags) as parent:
            for path in run.artifacts:
                client.log_artifact(parent, str(path))
            for candidate in run.candidates:
                tags = {**candidate.tags, MLFLOW_PARENT_RUN_ID: parent}
                with _started(
                    client, experiment, run, candidate.name, candidate.params, tags
                ) as child:
                    _log_numbers(client, child, candidate, run.ended_ms)
    return f"{_shown(uri)} experiment '{name}', parent run {parent} ({run.run_id})"


@contextmanager
def _started(
    client: Any,
    experiment: str,
    run: RunLog,
    name: str,
    params: dict[str, Param],
    tags: dict[str, str],
) -> Iterator[str]:
    """A run with its params and tags; FINISHED at the tunewise run's end, FAILED if logging
    into it failed (never left RUNNING)."""
    from mlflow.entities import Param as MlflowParam

    tags = {k: v[:TAG_CHARS] for k, v in tags.items()}
    created = client.create_run(experiment, start_time=run.started_ms, tags=tags, run_name=name)
    run_id: str = created.info.run_id
    try:
        values = [MlflowParam(k, _text(v)[:PARAM_CHARS]) for k, v in params.items()]
        for chunk in _chunks(values, PARAMS_PER_BATCH):
            client.log_batch(run_id, params=chunk)
        yield run_id
    except BaseException:
        client.set_terminated(run_id, status="FAILED")
        raise
    client.set_terminated(run_id, end_time=run.ended_ms)


def _log_numbers(client: Any, run_id: str, candidate: CandidateLog, when_ms: int) -> None:
    """The candidate's figures at step 0 and its loss curve at the training steps."""
    from mlflow.entities import Metric

    metrics = [Metric(k, v, when_ms, 0) for k, v in candidate.metrics.items()]
    for step, values in candidate.curve:
        metrics += [Metric(series, v, when_ms, step) for series, v in values.items()]
    for chunk in _chunks(metrics, METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=chunk)


@contextmanager
def _file_store_allowed(uri: str) -> Iterator[None]:
    """MLflow 3 refuses its file store unless MLFLOW_ALLOW_FILE_STORE is set; tunewise's default
    is one (no database needed), so allow it for these writes unless the user said otherwise."""
    local = urlsplit(uri).scheme in {"", "file"}
    if not local or "MLFLOW_ALLOW_FILE_STORE" in os.environ:
        yield
        return
    os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
    try:
        yield
    finally:
        os.environ.pop("MLFLOW_ALLOW_FILE_STORE", None)


def _shown(uri: str) -> str:
    """The URI as printed: a user:password in it is never shown."""
    parts = urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def _text(value: Param) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])
