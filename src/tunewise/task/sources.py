"""Examples from tables: Hugging Face Hub datasets (`hf:ORG/NAME[:CONFIG][@SPLIT]`), parquet and
arrow files, and folders saved with `save_to_disk`; the column mapping every reader applies; and
data errors that name the task.yaml key they came from.

`datasets` (and pyarrow) are imported only when a table is read: they are slow to import, and a
JSONL task never needs them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, PlainValidator, WithJsonSchema

from tunewise.errors import DataError

HUB_SPEC = re.compile(
    r"^hf:(?P<name>[\w.-]+(?:/[\w.-]+)?)(?::(?P<config>[\w.-]+))?(?:@(?P<split>[^@\s]+))?$"
)
HUB_FORM = "hf:ORG/NAME[:CONFIG][@SPLIT]"
TABLE_SUFFIXES = (".parquet", ".arrow")
SAVED_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes in a folder
DESCRIBED = (
    ".jsonl, .csv, .parquet or .arrow file, a folder saved with save_to_disk, or " + HUB_FORM
)
# Keys of the recognised record formats: dropped when columns are mapped, so the mapped record
# is read as {"input", "output"} and not as another format.
FORMAT_KEYS = ("messages", "prompt", "completion", "instruction", "input", "output", "id")


def _data_source(value: Any) -> Path | str:
    """A file or folder path (resolved later against the task's folder), or an hf: name kept as
    a string so it is never resolved as a file."""
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be the path of a {DESCRIBED}")
    if value.startswith("hf:"):
        if not HUB_SPEC.match(value):
            raise ValueError(f"'{value}' is not a Hugging Face dataset name; use {HUB_FORM}")
        return value
    return Path(value)


DataSource = Annotated[Path | str, PlainValidator(_data_source), WithJsonSchema({"type": "string"})]
ColumnName = Annotated[str, Field(min_length=1)]


@dataclass(frozen=True)
class Columns:
    """Which column of a record holds the input, the output and the id."""

    input: str = "input"
    output: str = "output"
    id: str = "id"

    @property
    def mapped(self) -> bool:
        return (self.input, self.output, self.id) != ("input", "output", "id")


def columns_of(entry: Any) -> Columns:
    """The column mapping of a task.yaml data entry (data, or one of datasets)."""
    return Columns(entry.input_field, entry.output_field, entry.id_field)


def map_columns(
    path: Path | str, line: int, record: dict[str, Any], columns: Columns
) -> tuple[dict[str, Any], dict[str, str]]:
    """The record as {"input", "output", "id", ...the rest}, and the user's name of each renamed
    key, so an error names the column the user wrote."""
    if not columns.mapped:
        return record, {}
    if columns.input not in record:
        raise DataError(path, line, columns.input, "is missing (the input column)")
    if columns.id != "id" and columns.id not in record:
        raise DataError(path, line, columns.id, "is missing (the id column)")
    renames = {"input": columns.input, "output": columns.output, "id": columns.id}
    used = set(renames.values())
    mapped = {k: v for k, v in record.items() if k not in used and k not in FORMAT_KEYS}
    for key, column in renames.items():
        if column in record:
            mapped[key] = record[column]
    return mapped, renames


def renamed(error: DataError, renames: Mapping[str, str]) -> DataError:
    """The error with its field named as the user's column."""
    if error.field not in renames:
        return error
    return DataError(error.path, error.line, renames[error.field], error.problem)


@contextmanager
def keyed(where: str | None) -> Iterator[None]:
    """Data errors raised inside name the task.yaml key and line first ("task.yaml:7:
    data.train: ...")."""
    try:
        yield
    except DataError as error:
        if where is None:
            raise
        keyed_error = DataError(error.path, error.line, error.field, error.problem)
        keyed_error.args = (f"{where}: {error}",)  # the message DataError built, behind the key
        raise keyed_error from None


def is_hub(source: Path | str) -> bool:
    return isinstance(source, str) and source.startswith("hf:")


def is_table(source: Path | str) -> bool:
    """A source read through `datasets`: an hf: name, a parquet or arrow file, a saved folder."""
    if is_hub(source):
        return True
    path = Path(source)
    return path.suffix.lower() in TABLE_SUFFIXES or _saved_folder(_split_suffix(path)[0])


def _saved_folder(path: Path) -> bool:
    return path.is_dir() and any((path / marker).exists() for marker in SAVED_MARKERS)


def _split_suffix(path: Path) -> tuple[Path, str | None]:
    """`folder@train` -> (folder, "train") when `folder@train` itself is not there."""
    if path.exists() or "@" not in path.name:
        return path, None
    folder, split = path.name.rsplit("@", 1)
    return path.with_name(folder), split or None


def table_records(source: Path | str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number from 1, row) of a table source; `split` is the one to read when the source
    names none (a hub dataset, a DatasetDict folder). Class-label columns give label names."""
    table = _hub_table(source, split) if isinstance(source, str) else _file_table(source, split)
    names = {
        column: feature.names
        for column, feature in table.features.items()
        if type(feature).__name__ == "ClassLabel"
    }
    for number, row in enumerate(table.to_list(), start=1):
        for column, labels in names.items():
            value = row.get(column)
            if isinstance(value, int) and 0 <= value < len(labels):
                row[column] = labels[value]
        yield number, row


def _hub_table(spec: str, default_split: str) -> Any:
    """A Hub dataset through `datasets.load_dataset`: its cache, and offline mode when
    HF_HUB_OFFLINE or HF_DATASETS_OFFLINE is set; any failure is one line naming the dataset."""
    match = HUB_SPEC.match(spec)
    if match is None:
        raise DataError(spec, None, None, f"not a Hugging Face dataset name; use {HUB_FORM}")
    datasets = _datasets(spec)
    name, config = match["name"], match["config"]
    try:
        return datasets.load_dataset(name, config, split=match["split"] or default_split)
    except Exception as exc:  # network, missing dataset, unknown config or split: all one line
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        error = DataError(spec, None, None, reason)
        error.args = (f"cannot load {spec}: {reason}",)
        raise error from None


def _file_table(path: Path, default_split: str) -> Any:
    datasets = _datasets(path)
    folder, split = _split_suffix(path)
    if not folder.exists():
        raise DataError(path, None, None, "no such file")
    try:
        if path.suffix.lower() == ".parquet":
            import pyarrow.parquet as pq

            arrow = pq.read_table(path)
            return datasets.Dataset(datasets.table.InMemoryTable(arrow))
        if path.suffix.lower() == ".arrow":
            return _arrow_file(datasets, path)
        saved = datasets.load_from_disk(str(folder))
    except Exception as exc:  # a damaged or foreign file: name it, not a traceback
        problem = f"cannot read ({' '.join(str(exc).split())[:300]})"
        raise DataError(path, None, None, problem) from None
    if isinstance(saved, datasets.DatasetDict):
        chosen = split or default_split
        if chosen not in saved:
            splits = ", ".join(saved)
            raise DataError(
                folder, None, None, f"holds the splits {splits}; name one: {folder.name}@SPLIT"
            )
        return saved[chosen]
    if split is not None:
        raise DataError(folder, None, None, f"holds one dataset, not splits; remove '@{split}'")
    return saved


def _arrow_file(datasets: Any, path: Path) -> Any:
    """An arrow stream (what save_to_disk writes), else an arrow IPC file (feather v2)."""
    try:
        return datasets.Dataset.from_file(str(path))
    except Exception:  # not a stream: try the file format before giving up
        import pyarrow as pa

        with pa.memory_map(str(path)) as source:
            return datasets.Dataset(
                datasets.table.InMemoryTable(pa.ipc.open_file(source).read_all())
            )


def _datasets(source: Path | str) -> Any:
    try:
        import datasets
    except ImportError:
        problem = "reading this source needs the datasets package: pip install datasets"
        raise DataError(source, None, None, problem) from None
    return datasets
