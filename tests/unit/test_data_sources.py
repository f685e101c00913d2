"""Data from tables: folders saved with save_to_disk, parquet and arrow files, hf: hub names
(offline here), the column mapping, and data errors that name the task.yaml key and line."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import datasets
import huggingface_hub.constants
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import SENTIMENT_TEST, SENTIMENT_TRAIN, TASK_YAML, ScriptedBackend, measure
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.errors import DataError, TaskError
from tunewise.run import RunOptions, load_data
from tunewise.task.loading import load_task, task_hash

MAPPED = "  input_field: text\n  output_field: label\n  id_field: idx\n"


def rows(pairs: list[tuple[str, str]], prefix: str) -> dict[str, list[Any]]:
    return {
        "idx": [f"{prefix}{i}" for i in range(len(pairs))],
        "text": [text for text, _ in pairs],
        "label": [label for _, label in pairs],
    }


def write_parquet(path: Path, columns: dict[str, list[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)
    return path


def task_folder(tmp_path: Path, train: str, test: str, extra: str = MAPPED) -> Path:
    """TASK_YAML with data.train and data.test replaced (and the column mapping added)."""
    text = TASK_YAML.replace("data/train.jsonl", train).replace("data/test.jsonl", test)
    text = text.replace("  test: " + test + "\n", "  test: " + test + "\n" + extra)
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "task.yaml").write_text(text, encoding="utf-8")
    return tmp_path / "task.yaml"


def line_of(task_file: Path, key: str) -> int:
    lines = task_file.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip().startswith(f"{key}:"))


def data_error(task_file: Path) -> str:
    with pytest.raises(DataError) as caught:
        load_data(load_task(task_file), RunOptions())
    return str(caught.value)


pytestmark = pytest.mark.usefixtures("contained_environment")


@pytest.fixture
def offline_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Offline mode and an empty Hugging Face cache; datasets and huggingface_hub read both
    when first imported, so their settings are patched too."""
    cache = tmp_path / "hf-home"
    for name, value in (
        ("HF_HOME", cache),
        ("HF_DATASETS_CACHE", cache / "datasets"),
        ("HF_HUB_CACHE", cache / "hub"),
        ("HF_DATASETS_OFFLINE", "1"),
        ("HF_HUB_OFFLINE", "1"),
    ):
        monkeypatch.setenv(name, str(value))
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache / "datasets")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache / "hub"))
    return cache


def test_saved_folder_and_parquet_run_end_to_end(scripted: ScriptedBackend, tmp_path: Path) -> None:
    saved = datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(SENTIMENT_TRAIN, "tr"))})
    saved.save_to_disk(str(tmp_path / "data" / "reviews"))
    write_parquet(tmp_path / "data" / "test.parquet", rows(SENTIMENT_TEST, "te"))
    task_file = task_folder(tmp_path, "data/reviews@train", "data/test.parquet")

    result = measure(task_file, strategies=("zero-shot",))

    assert [e.id for e in result.dataset.train] == [f"tr{i}" for i in range(len(SENTIMENT_TRAIN))]
    assert [(e.input, e.output) for e in result.dataset.test] == SENTIMENT_TEST
    assert result.dataset.test_source == "file"
    assert result.dataset.test[0].source == "test.parquet:1"
    assert result.candidates[0].metrics["accuracy"].value > 0.5  # the scripted keyword rule


def test_arrow_file_and_class_labels_read_as_label_names(tmp_path: Path) -> None:
    features = datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["negative", "positive"]),
        }
    )
    table = datasets.Dataset.from_dict(
        {"text": ["awful", "great", "love it"], "label": [0, 1, 1]}, features=features
    )
    table.save_to_disk(str(tmp_path / "data" / "saved"))
    [arrow] = (tmp_path / "data" / "saved").glob("*.arrow")
    task_file = task_folder(
        tmp_path,
        f"data/saved/{arrow.name}",
        "data/saved",
        "  input_field: text\n  output_field: label\n",
    )
    dataset, _ = load_data(load_task(task_file), RunOptions())
    assert [e.output for e in dataset.train] == ["negative", "positive", "positive"]
    assert [e.id for e in dataset.test] == ["saved-1", "saved-2", "saved-3"]  # row numbers


@pytest.mark.parametrize(
    ("column", "values", "problem"),
    [
        ("text", None, "is missing"),
        ("text", ["   "] * len(SENTIMENT_TEST), "is empty"),
        ("label", [3] * len(SENTIMENT_TEST), "must be a string, got int"),
    ],
)
def test_bad_rows_name_file_row_field_and_key(
    tmp_path: Path, column: str, values: list[Any] | None, problem: str
) -> None:
    columns = rows(SENTIMENT_TEST, "te")
    if values is None:
        del columns[column]
    else:
        columns[column] = values
    test = write_parquet(tmp_path / "data" / "test.parquet", columns)
    write_parquet(tmp_path / "data" / "train.parquet", rows(SENTIMENT_TRAIN, "tr"))
    task_file = task_folder(tmp_path, "data/train.parquet", "data/test.parquet")
    message = data_error(task_file)
    where = f"{task_file}:{line_of(task_file, 'test')}: data.test: {test.resolve()}:1:"
    assert message.startswith(f"{where} field '{column}': {problem}"), message


def test_a_missing_mapped_id_column_is_an_error(tmp_path: Path) -> None:
    columns = rows(SENTIMENT_TRAIN, "tr")
    del columns["idx"]
    write_parquet(tmp_path / "data" / "train.parquet", columns)
    task_file = task_folder(tmp_path, "data/train.parquet", "data/train.parquet")
    assert "field 'idx': is missing (the id column)" in data_error(task_file)


def test_the_data_hash_covers_the_rows(tmp_path: Path) -> None:
    train = write_parquet(tmp_path / "data" / "train.parquet", rows(SENTIMENT_TRAIN, "tr"))
    write_parquet(tmp_path / "data" / "test.parquet", rows(SENTIMENT_TEST, "te"))
    task_file = task_folder(tmp_path, "data/train.parquet", "data/test.parquet")
    before, _ = load_data(load_task(task_file), RunOptions())
    changed = rows(SENTIMENT_TRAIN, "tr")
    changed["text"][0] = "I adore this blender"
    write_parquet(train, changed)
    after, _ = load_data(load_task(task_file), RunOptions())
    assert before.hash != after.hash
    assert task_hash(load_task(task_file)) == task_hash(load_task(task_file))


def test_a_dataset_dict_folder_names_its_splits(tmp_path: Path) -> None:
    saved = datasets.DatasetDict({"a": datasets.Dataset.from_dict(rows(SENTIMENT_TRAIN, "tr"))})
    saved.save_to_disk(str(tmp_path / "data" / "reviews"))
    task_file = task_folder(tmp_path, "data/reviews", "data/reviews@b")
    message = data_error(task_file)
    assert f"{line_of(task_file, 'train')}: data.train: " in message
    assert "holds the splits a; name one: reviews@SPLIT" in message


def test_an_unreachable_hub_dataset_is_one_line_naming_key_and_line(
    offline_hub: Path, tmp_path: Path
) -> None:
    task_file = task_folder(tmp_path, "hf:some/name", "hf:some/name@validation", "")
    result = CliRunner().invoke(app, ["run", str(task_file), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    expected = f"error: {task_file}:{line_of(task_file, 'train')}: data.train: cannot load "
    assert line.startswith(expected + "hf:some/name: "), line
    assert "Traceback" not in result.output
    assert not list(offline_hub.rglob("*.arrow"))


def test_hub_names_stay_names_and_hash_whole(tmp_path: Path) -> None:
    task_file = task_folder(tmp_path, "hf:glue:sst2@train", "hf:glue:sst2@validation", "")
    task = load_task(task_file)
    assert task.data.train == "hf:glue:sst2@train"
    other = task_folder(tmp_path / "b", "hf:other:sst2@train", "hf:glue:sst2@validation", "")
    assert task_hash(task) != task_hash(load_task(other))


def test_a_malformed_hub_name_is_a_task_error(tmp_path: Path) -> None:
    task_file = task_folder(tmp_path, "hf:a/b/c", "data/test.jsonl", "")
    with pytest.raises(TaskError, match=re.escape("use hf:ORG/NAME[:CONFIG][@SPLIT]")):
        load_task(task_file)


def test_default_columns_keep_the_task_hash(tmp_path: Path) -> None:
    plain = task_folder(tmp_path / "a", "data/train.jsonl", "data/test.jsonl", "")
    spelled = task_folder(
        tmp_path / "b", "data/train.jsonl", "data/test.jsonl", "  input_field: input\n"
    )
    mapped = task_folder(tmp_path / "c", "data/train.jsonl", "data/test.jsonl")
    assert task_hash(load_task(plain)) == task_hash(load_task(spelled))
    assert task_hash(load_task(plain)) != task_hash(load_task(mapped))


def test_a_missing_plain_file_names_key_and_line(tmp_path: Path) -> None:
    task_file = task_folder(tmp_path, "data/nowhere.jsonl", "data/test.jsonl", "")
    result = CliRunner().invoke(app, ["run", str(task_file), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    missing = (tmp_path / "data" / "nowhere.jsonl").resolve()
    where = f"{task_file}:{line_of(task_file, 'train')}: data.train: {missing}: no such file"
    assert result.output.strip() == f"error: {where}"


def test_the_column_mapping_applies_to_csv_too(tmp_path: Path) -> None:
    csv_lines = ["idx,text,label", *(f"c{i},{t},{y}" for i, (t, y) in enumerate(SENTIMENT_TEST))]
    (tmp_path / "data").mkdir(parents=True)
    (tmp_path / "data" / "test.csv").write_text("\n".join(csv_lines) + "\n", encoding="utf-8")
    write_parquet(tmp_path / "data" / "train.parquet", rows(SENTIMENT_TRAIN, "tr"))
    dataset, _ = load_data(
        load_task(task_folder(tmp_path, "data/train.parquet", "data/test.csv")), RunOptions()
    )
    first = dataset.test[0]
    assert (first.id, first.input, first.output) == ("c0", *SENTIMENT_TEST[0])


def test_an_extra_dataset_error_names_its_entry(tmp_path: Path) -> None:
    write_parquet(tmp_path / "data" / "train.parquet", rows(SENTIMENT_TRAIN, "tr"))
    write_parquet(tmp_path / "data" / "test.parquet", rows(SENTIMENT_TEST, "te"))
    task_file = task_folder(tmp_path, "data/train.parquet", "data/test.parquet")
    with task_file.open("a", encoding="utf-8") as out:
        out.write("datasets:\n  - name: other\n    train: data/other.parquet\n")
    task = load_task(task_file)
    with pytest.raises(DataError) as caught:
        load_data(task, RunOptions(), task.datasets[0])
    lines = task_file.read_text(encoding="utf-8").splitlines()
    line = lines.index("    train: data/other.parquet") + 1
    missing = (tmp_path / "data" / "other.parquet").resolve()
    assert str(caught.value) == f"{task_file}:{line}: datasets.0.train: {missing}: no such file"
