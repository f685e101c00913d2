"""Logging a written run to experiment trackers: MLflow (a local file store), W&B (offline run
files) and TensorBoard (event files), each read back with the tracker's own reader; the
`--log` and `tunewise log` commands; a missing tracker package fails before the run starts."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TEXT_TASK, ScriptedBackend, measure, write_jsonl
from typer.testing import CliRunner

import tunewise.records.tracking as tracking
from tunewise.cli.main import app
from tunewise.errors import TunewiseError
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.records.results import write_run

TRAIN = [(f"What is the capital of country {i}?", f"City {i}") for i in range(10)]
TEST = [
    ("What is the capital of France?", "Paris"),
    ("What is the capital of Peru?", "Lima"),
    ("What is the capital of Chad?", "N'Djamena"),
]
CURVE = [
    {"step": 3, "epoch": 0.5, "train_loss": 2.5, "validation_loss": 2.75},
    {"step": 6, "epoch": 1.0, "train_loss": 1.5, "validation_loss": 2.0},
    {"step": 9, "epoch": 1.5, "train_loss": 1.0, "validation_loss": 1.75},
]
TRAINING = {
    "seconds": 12.5,
    "examples": 10,
    "validation_examples": 2,
    "tokens_trained": 4096,
    "steps": 9,
    "best_step": 9,
    "best_validation_loss": 1.75,
    "stopped_early": False,
    "loss_curve": CURVE,
    "overfitting": False,
    "config": {"rank": 8, "learning_rate": 0.0002},
}


def answer(messages: Any) -> str:
    question = messages[-1]["content"]
    return "Paris" if "France" in question else "Lima"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One real scripted run of a text task, its second candidate made a LoRA candidate with a
    training record (the scripted backend cannot train), as results.json holds one."""
    root = tmp_path_factory.mktemp("tracked")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TUNEWISE_HOME", str(root / "home"))
        register_backend("scripted", lambda rest: ScriptedBackend(answer))
        try:
            write_jsonl(root / "task" / "data" / "train.jsonl", TRAIN)
            write_jsonl(root / "task" / "data" / "test.jsonl", TEST)
            (root / "task" / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
            folder = write_run(measure(root / "task" / "task.yaml"), root / "runs")
        finally:
            unregister_backend("scripted")
    path = folder / "results.json"
    document = json.loads(path.read_text(encoding="utf-8"))
    tuned = document["candidates"][1]
    assert document["recommendation"]["candidate"] != tuned["name"]
    tuned.update(strategy="lora", family="fine-tuning", trains=True, effort="High")
    tuned["params"] = {"base_model": "scripted:test", "rank": 8, "alpha": 16, "seed": 7}
    tuned["setup"] = {"seconds": 12.5, "training": TRAINING}
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")
    yield folder


@pytest.fixture
def run_dir(written: Path, tmp_path: Path) -> Path:
    """A private copy of the run folder: trackers write beside it."""
    return Path(shutil.copytree(written, tmp_path / "runs" / written.name))


def results(run_dir: Path) -> dict[str, Any]:
    return dict(json.loads((run_dir / "results.json").read_text(encoding="utf-8")))


def needs(module: str) -> pytest.MarkDecorator:
    missing = importlib.util.find_spec(module) is None
    return pytest.mark.skipif(missing, reason=f"{module} is not installed")


# ---- the neutral record --------------------------------------------------------------------


def test_each_candidate_has_flat_params_metrics_curve_and_the_recommendation(
    run_dir: Path,
) -> None:
    document = results(run_dir)
    run = tracking.read_run_log(run_dir)
    assert [c.name for c in run.candidates] == [c["name"] for c in document["candidates"]]
    assert run.artifacts == (run_dir / "results.json", run_dir / "report.html")
    first, tuned = run.candidates[0], run.candidates[1]
    f1 = document["candidates"][0]["metrics"]["token_f1"]
    assert first.metrics["token_f1"] == f1["value"]
    assert first.metrics["token_f1.ci_low"] == f1["ci_low"]
    assert first.metrics["token_f1.ci_high"] == f1["ci_high"]
    assert (
        first.metrics["usage.latency_p50_ms"]
        == document["candidates"][0]["usage"]["latency_p50_ms"]
    )
    assert first.metrics["cost.compute_seconds_per_request"] > 0
    assert not any(k.startswith("cost.per_request.basis") for k in first.metrics)
    assert first.curve == ()
    assert tuned.curve == tuple(
        (p["step"], {"train_loss": p["train_loss"], "validation_loss": p["validation_loss"]})
        for p in CURVE
    )
    assert tuned.metrics["training.best_validation_loss"] == 1.75
    assert tuned.params["strategy"] == "lora" and tuned.params["rank"] == 8
    assert tuned.params["seed"] == document["seed"]
    assert tuned.params["params.seed"] == 7  # the candidate's own seed, not the run's
    assert tuned.params["data_hash"] == document["data"]["hash"]
    assert tuned.params["task_hash"] == document["task"]["hash"]
    recommendation = document["recommendation"]
    assert first.tags["recommendation.candidate"] == recommendation["candidate"]
    assert first.tags["recommendation.verdict"] == recommendation["verdict"]
    assert tuned.tags["recommended"] == "false"
    assert recommendation["reasons"][0] in run.summary


def test_keys_and_params_are_flat_and_acceptable_to_every_tracker() -> None:
    assert tracking.key("python:metrics:score") == "python_metrics_score"
    nested = {"a": {"b": 1, "c": None}, "d": [1, 2], "e": True}
    assert tracking.flat_params(nested) == {"a.b": 1, "a.c": "null", "d": "[1, 2]", "e": True}
    numbers = {"x": 1, "y": None, "z": "text", "w": {"v": 2.5, "flag": True}, "n": float("nan")}
    assert tracking.flat_numbers(numbers, "p") == {"p.x": 1.0, "p.w.v": 2.5}


def test_unknown_tracker_is_a_user_error() -> None:
    with pytest.raises(TunewiseError, match="unknown tracker 'neptune'; use mlflow, wandb"):
        tracking.parse_trackers("mlflow,neptune")


def test_a_missing_tracker_fails_before_the_run_starts(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(tiny_task), "--out", str(out), "--log", "wandb"])
    assert result.exit_code == 2
    assert "error: --log wandb needs wandb: pip install 'tunewise[wandb]'" in result.output
    assert scripted.calls == [] and not out.exists()


def test_a_failing_tracker_names_the_command_that_retries(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(run: tracking.RunLog) -> str:
        raise ConnectionError("server at 127.0.0.1:5000 refused\nsecond line")

    import tunewise.records.tracking_tensorboard as tensorboard

    monkeypatch.setattr(tensorboard, "log", refuse)
    with pytest.raises(TunewiseError) as caught:
        tracking.log_run(run_dir, ["tensorboard"])
    message = str(caught.value)
    assert message.startswith("tensorboard: ConnectionError: server at 127.0.0.1:5000 refused")
    assert "second line" not in message
    assert f"tunewise log {run_dir} --to tensorboard" in message


# ---- MLflow --------------------------------------------------------------------------------


@needs("mlflow")
def test_mlflow_parent_run_holds_a_child_run_per_candidate(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    store = tmp_path / "store"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    [line] = tracking.log_run(run_dir, ["mlflow"])
    assert line.startswith(f"mlflow: {store.as_uri()} experiment 'tunewise'")
    document = results(run_dir)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # to read the file store back
    client = MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("tunewise")
    found = client.search_runs([experiment.experiment_id])
    [parent] = [r for r in found if r.info.run_name == document["run_id"]]
    children = {r.info.run_name: r for r in found if r is not parent}
    assert set(children) == {c["name"] for c in document["candidates"]}
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in children.values())
    assert all(r.info.status == "FINISHED" for r in found)
    recommended = document["recommendation"]["candidate"]
    assert parent.data.tags["recommendation.candidate"] == recommended
    assert children[recommended].data.tags["recommended"] == "true"
    assert parent.data.params["task_hash"] == document["task"]["hash"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert artifacts == {"results.json", "report.html"}
    for candidate in document["candidates"]:
        data = children[candidate["name"]].data
        f1 = candidate["metrics"]["token_f1"]
        assert data.metrics["token_f1"] == f1["value"]
        assert data.metrics["token_f1.ci_low"] == f1["ci_low"]
        assert data.params["strategy"] == candidate["strategy"]
    tuned = children[document["candidates"][1]["name"]]
    history = client.get_metric_history(tuned.info.run_id, "validation_loss")
    assert [(m.step, m.value) for m in history] == [
        (p["step"], p["validation_loss"]) for p in CURVE
    ]
    assert tuned.data.params["rank"] == "8"


@needs("mlflow")
def test_mlflow_defaults_to_a_file_store_beside_the_run(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    tracking.log_run(run_dir, ["mlflow"])
    assert (run_dir.parent / "mlruns").is_dir()
    assert "MLFLOW_ALLOW_FILE_STORE" not in os.environ


def test_mlflow_never_prints_a_password_in_the_uri() -> None:
    from tunewise.records.tracking_mlflow import _shown

    assert _shown("https://me:secret@mlflow.example:8443/x") == "https://mlflow.example:8443/x"
    assert _shown("file:///tmp/mlruns") == "file:///tmp/mlruns"


# ---- Weights & Biases ----------------------------------------------------------------------


def wandb_records(path: Path) -> Iterator[Any]:
    """The protobuf records of an offline .wandb file (a LevelDB-style log of 32 KiB blocks
    after a 7-byte header)."""
    from wandb.proto import wandb_internal_pb2

    data, block = path.read_bytes(), 32768
    assert data[:4] == b":W&B"
    position, pieces = 7, []
    while position + 7 <= len(data):
        if block - position % block < 7:  # a block's tail too short for a header is padding
            position += block - position % block
            continue
        _checksum, length, kind = struct.unpack("<IHB", data[position : position + 7])
        pieces.append(data[position + 7 : position + 7 + length])
        position += 7 + length
        if kind in (1, 4):  # a full record, or a split record's last piece
            record = wandb_internal_pb2.Record()
            record.ParseFromString(b"".join(pieces))
            pieces = []
            yield record


def wandb_run(path: Path) -> dict[str, Any]:
    """An offline run's name, group, config, final summary and history rows."""
    run: dict[str, Any] = {"summary": {}, "history": []}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run.update(name=record.run.display_name, group=record.run.run_group)
            run["tags"] = list(record.run.tags)
            run["config"] = {u.key: json.loads(u.value_json) for u in record.run.config.update}
        elif kind == "summary":
            for update in record.summary.update:
                run["summary"][update.key or ".".join(update.nested_key)] = json.loads(
                    update.value_json
                )
        elif kind == "history":
            items = record.history.item
            run["history"].append(
                {i.key or ".".join(i.nested_key): json.loads(i.value_json) for i in items}
            )
        elif kind == "artifact":
            run["artifact"] = sorted(c.path for c in record.artifact.manifest.contents)
    return run


@needs("wandb")
def test_wandb_offline_writes_a_run_per_candidate_in_the_run_group(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wb"))
    for variable in ("WANDB_DATA_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR"):
        monkeypatch.setenv(variable, str(tmp_path / variable.lower()))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    [line] = tracking.log_run(run_dir, ["wandb"])
    document = results(run_dir)
    assert line.startswith(f"wandb: 2 runs in project 'tunewise', group '{document['run_id']}'")
    files = sorted((tmp_path / "wb" / "wandb").glob("offline-run-*/run-*.wandb"))
    runs = {run["name"]: run for run in map(wandb_run, files)}
    assert set(runs) == {c["name"] for c in document["candidates"]}
    for candidate in document["candidates"]:
        run = runs[candidate["name"]]
        assert run["group"] == document["run_id"]
        assert run["config"]["strategy"] == candidate["strategy"]
        assert run["config"]["recommendation.verdict"] == document["recommendation"]["verdict"]
        assert run["summary"]["token_f1"] == candidate["metrics"]["token_f1"]["value"]
        assert run["summary"]["token_f1.ci_high"] == candidate["metrics"]["token_f1"]["ci_high"]
        assert run["artifact"] == ["report.html", "results.json"]
    tuned = runs[document["candidates"][1]["name"]]
    steps = [(row["_step"], row["train_loss"]) for row in tuned["history"]]
    assert steps == [(p["step"], p["train_loss"]) for p in CURVE]
    assert "recommended" in runs[document["recommendation"]["candidate"]]["tags"]
    assert not list((tmp_path / "wb").rglob("requirements.txt"))  # nothing beyond the run


# ---- TensorBoard ---------------------------------------------------------------------------


def events(folder: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(folder))
    accumulator.Reload()
    return accumulator


@needs("tensorboard")
def test_tensorboard_writes_a_folder_per_candidate_with_the_loss_curve(run_dir: Path) -> None:
    [line] = tracking.log_run(run_dir, ["tensorboard"])
    document = results(run_dir)
    root = run_dir.parent / "tensorboard" / document["run_id"]
    assert line.startswith(f"tensorboard: {root}")
    assert sorted(p.name for p in root.iterdir()) == sorted(
        c["name"] for c in document["candidates"]
    )
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no staging left
    tuned = events(root / document["candidates"][1]["name"])
    curve = [(e.step, e.value) for e in tuned.Scalars("validation_loss")]
    assert curve == [(p["step"], p["validation_loss"]) for p in CURVE]
    first = document["candidates"][0]
    scalars = events(root / first["name"])
    assert scalars.Scalars("token_f1")[0].value == pytest.approx(
        first["metrics"]["token_f1"]["value"]
    )
    [text] = scalars.Tensors("recommendation/text_summary")
    assert document["recommendation"]["reasons"][0] in text.tensor_proto.string_val[0].decode()
    tracking.log_run(run_dir, ["tensorboard"])  # again: new event files join the folders
    assert len(list((root / first["name"]).glob("events.out.tfevents.*"))) == 2


@needs("tensorboard")
@needs("mlflow")
def test_a_skipped_candidate_is_logged_with_its_reason_and_no_figures(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient

    document = results(run_dir)
    skipped = {"name": "qlora", "strategy": "qlora", "family": "fine-tuning", "trains": True,
               "effort": "High", "model": "scripted:test", "status": "skipped",
               "skipped_reason": "QLoRA needs a CUDA GPU"}  # fmt: skip
    document["candidates"].append(skipped)
    (run_dir / "results.json").write_text(json.dumps(document), encoding="utf-8")
    [log] = [c for c in tracking.read_run_log(run_dir).candidates if c.name == "qlora"]
    assert log.metrics == {} and log.curve == ()
    assert log.tags["status"] == "skipped"
    assert log.tags["skipped_reason"] == "QLoRA needs a CUDA GPU"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    tracking.log_run(run_dir, ["tensorboard", "mlflow"])
    assert (run_dir.parent / "tensorboard" / document["run_id"] / "qlora").is_dir()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "store").as_uri())
    experiment = client.get_experiment_by_name("tunewise")
    [run] = client.search_runs([experiment.experiment_id], "attributes.run_name = 'qlora'")
    assert run.data.tags["skipped_reason"] == "QLoRA needs a CUDA GPU"
    assert run.data.metrics == {}


# ---- the commands --------------------------------------------------------------------------


@needs("tensorboard")
def test_run_with_log_writes_the_run_then_its_tensorboard_logs(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    args = ["run", str(tiny_task), "--out", str(out), "--log", "tensorboard"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    [folder] = [p for p in out.iterdir() if p.name not in {"tensorboard"}]
    assert "logged to tensorboard:" in result.output
    candidates = {c["name"] for c in results(folder)["candidates"]}
    assert {p.name for p in (out / "tensorboard" / folder.name).iterdir()} == candidates


@needs("mlflow")
def test_log_command_logs_a_finished_run(
    run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "store").as_uri())
    result = CliRunner().invoke(app, ["log", str(run_dir), "--to", "mlflow"])
    assert result.exit_code == 0, result.output
    assert "logged to mlflow:" in result.output
    missing = CliRunner().invoke(app, ["log", str(run_dir), "--to", ""])
    assert missing.exit_code == 2 and "name at least one" in missing.output
