"""Examples from JSONL or CSV in the common fine-tuning formats (or from the tables sources.py
reads), a seeded split, a leakage check.

Every problem names the file, the line and the field, so a user can fix the data in one go.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.errors import DataError
from tunewise.task import sources
from tunewise.task.config import DataFiles, ExtraDataset, OutputFormat
from tunewise.task.sources import Columns

FORMATS = (
    '{"input", "output"}',
    '{"messages": [...]} (OpenAI chat; the last assistant turn is the output)',
    '{"instruction", "input", "output"} (alpaca)',
    '{"prompt", "completion"}',
)


@dataclass(frozen=True)
class Example:
    """One input with its reference output; `source` is "file:line" for messages."""

    id: str
    input: str
    output: str
    source: str
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Dataset:
    """The train and test examples of a run, and what the split and leakage check found."""

    train: list[Example]
    test: list[Example]
    test_source: str  # "file" or "split"
    leaked: list[str]  # test ids whose input also appears in train

    @property
    def hash(self) -> str:
        """sha256 over both splits, so a result names exactly the data it was measured on."""
        return examples_hash(self.train, self.test)


def examples_hash(*splits: Sequence[Example]) -> str:
    """sha256 over the ids, inputs and outputs of each split, in order; which split an example
    is in counts too."""
    digest = hashlib.sha256()
    for split in splits:
        for example in split:
            digest.update(json.dumps([example.id, example.input, example.output]).encode())
        digest.update(b"\x00")
    return digest.hexdigest()


def stratify_by_label(output_format: OutputFormat) -> bool:
    """Splits and samples keep the label mix for label tasks; other outputs have no strata."""
    return output_format.type == "label"


def read_examples(
    path: Path | str,
    output_format: OutputFormat,
    columns: Columns | None = None,
    split: str = "train",
) -> list[Example]:
    """Read a file or table of examples, checking every record against the output format;
    `split` is the one a hub dataset or saved DatasetDict gives when its name names none."""
    return _read_records(path, output_format, _to_example, "example", columns, split)


OUTPUT_KEYS = ("output", "completion", "messages")


def read_inputs(path: Path, output_format: OutputFormat) -> list[Example]:
    """Read a JSONL or CSV file of inputs for a teacher to label: the example formats with the
    output left out ({"input"}, {"prompt"}, {"instruction", "input"}, {"messages"} ending in a
    user turn, or a CSV with an input column). A record that has an output keeps it (checked
    like a training example) to measure the teacher against; the student never sees it."""
    return _read_records(path, output_format, _to_input, "input")


def _read_records(
    path: Path | str,
    output_format: OutputFormat,
    convert: Callable[[Any, int, dict[str, Any], OutputFormat], Example],
    noun: str,
    columns: Columns | None = None,
    split: str = "train",
) -> list[Example]:
    """Every record of a JSONL or CSV file or a table through `convert`, with unique ids."""
    records = _records(path, noun, split)
    examples: list[Example] = []
    first_line: dict[str, str] = {}
    for line, record in records:
        record, renames = sources.map_columns(path, line, record, columns or Columns())
        try:
            example = convert(path, line, record, output_format)
        except DataError as error:
            raise sources.renamed(error, renames) from None
        if example.id in first_line:
            problem = f"id '{example.id}' repeats {first_line[example.id]}; ids must be unique"
            raise DataError(path, line, "id", problem)
        first_line[example.id] = example.source
        examples.append(example)
    if not examples:
        raise DataError(path, None, None, f"the file holds no {noun}s")
    return examples


def _records(path: Path | str, noun: str, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
    if sources.is_table(path):
        return sources.table_records(path, split)
    path = Path(path)
    if not path.exists():
        raise DataError(path, None, None, "no such file")
    if path.is_dir():
        raise DataError(path, None, None, f"is a folder; expected a {sources.DESCRIBED}")
    raw = path.read_bytes()
    if not raw.strip():
        raise DataError(path, None, None, f"the file is empty; expected at least one {noun}")
    return _csv_records(path, raw) if path.suffix.lower() == ".csv" else jsonl_records(path, raw)


def _name_and_stem(path: Path | str) -> tuple[str, str]:
    """What an example's source and default id start with: a hub name stays whole."""
    return (path, path.removeprefix("hf:")) if isinstance(path, str) else (path.name, path.stem)


def _to_input(
    path: Path | str, line: int, record: dict[str, Any], output_format: OutputFormat
) -> Example:
    """One unlabeled record as an Example whose output is "" when the record has none."""
    messages = record.get("messages")
    has_output = any(record.get(key) not in (None, "") for key in ("output", "completion")) or (
        isinstance(messages, list)
        and any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages)
    )
    if has_output:
        return _to_example(path, line, record, output_format)
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        if not users:
            raise DataError(path, line, "messages", "has no user turn to label")
        text: Any = users[-1].get("content", "")
        used = ("messages",)
    elif "instruction" in record:
        instruction, extra_input = record["instruction"], record.get("input") or ""
        if not isinstance(instruction, str) or not isinstance(extra_input, str):
            raise DataError(path, line, "instruction", "instruction and input must be strings")
        text = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
        used = ("instruction", "input")
    elif "input" in record or "prompt" in record:
        used = ("input",) if "input" in record else ("prompt",)
        text = record[used[0]]
    else:
        keys = ", ".join(sorted(record)) or "none"
        raise DataError(
            path, line, None, f"no input (keys: {keys}); use input, prompt, instruction or messages"
        )
    if not isinstance(text, str):
        raise DataError(path, line, used[0], "must be a string")
    if not text.strip():
        raise DataError(path, line, used[0], "is empty; every record needs an input")
    name, stem = _name_and_stem(path)
    example_id = str(record.get("id", f"{stem}-{line}"))
    extra = {k: v for k, v in record.items() if k not in {*used, *OUTPUT_KEYS, "id"}}
    return Example(example_id, text, "", f"{name}:{line}", extra)


def _decode_lines(path: Path, raw: bytes) -> Iterator[tuple[int, str]]:
    for number, chunk in enumerate(raw.split(b"\n"), start=1):
        try:
            text = chunk.decode("utf-8")
        except UnicodeDecodeError as exc:
            problem = f"bytes are not UTF-8 at column {exc.start + 1}; re-save the file as UTF-8"
            raise DataError(path, number, None, problem) from None
        yield number, text.removeprefix("\ufeff") if number == 1 else text


def jsonl_records(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; errors name the file and line."""
    for number, text in _decode_lines(path, raw):
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            problem = f"malformed JSON ({exc.msg} at column {exc.colno})"
            raise DataError(path, number, None, problem) from None
        if not isinstance(record, dict):
            raise DataError(path, number, None, "each line must be a JSON object")
        yield number, record


def _csv_records(path: Path, raw: bytes) -> Iterator[tuple[int, dict[str, Any]]]:
    text = "\n".join(line for _, line in _decode_lines(path, raw))
    # csv.reader (unlike DictReader) yields blank lines as [], so line numbers stay exact.
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header or not any(name.strip() for name in header):
        raise DataError(path, 1, None, "the CSV has no header row")
    header = [name.strip() for name in header]
    previous_end = reader.line_num
    for row in reader:
        start, previous_end = previous_end + 1, reader.line_num
        if not any(value.strip() for value in row):
            continue
        if len(row) > len(header):
            raise DataError(path, start, None, "more values than header columns")
        yield start, dict(zip(header, row, strict=False))


def _to_example(
    path: Path | str, line: int, record: dict[str, Any], output_format: OutputFormat
) -> Example:
    def fail(field_name: str | None, problem: str) -> DataError:
        return DataError(path, line, field_name, problem)

    input_text, output, used = _input_output(record, fail)
    if not isinstance(input_text, str):
        raise fail(used[0], "must be a string")
    if not input_text.strip():
        raise fail(used[0], "is empty; every example needs an input")
    output_text = _output_text(output, output_format, used[-1], fail)
    name, stem = _name_and_stem(path)
    example_id = str(record.get("id", f"{stem}-{line}"))
    extra = {key: value for key, value in record.items() if key not in {*used, "id"}}
    return Example(example_id, input_text, output_text, f"{name}:{line}", extra)


def _input_output(record: dict[str, Any], fail: Any) -> tuple[Any, Any, tuple[str, ...]]:
    """Recognise the record's format; returns (input, output, the keys that held them)."""
    if "messages" in record:
        return (*_from_messages(record["messages"], fail), ("messages",))
    if "prompt" in record or "completion" in record:
        return record.get("prompt"), _require(record, "completion", fail), ("prompt", "completion")
    if "instruction" in record:
        instruction, extra_input = record["instruction"], record.get("input") or ""
        if not isinstance(instruction, str) or not isinstance(extra_input, str):
            raise fail("instruction", "instruction and input must be strings")
        joined = f"{instruction}\n\n{extra_input}" if extra_input.strip() else instruction
        return joined, _require(record, "output", fail), ("instruction", "input", "output")
    if "input" in record:
        return record["input"], _require(record, "output", fail), ("input", "output")
    keys = ", ".join(sorted(record)) or "none"
    raise fail(None, f"unrecognised record (keys: {keys}); use one of: {'; '.join(FORMATS)}")


def _require(record: dict[str, Any], key: str, fail: Any) -> Any:
    if key not in record or record[key] is None:
        raise fail(key, "is missing")
    return record[key]


def _from_messages(messages: Any, fail: Any) -> tuple[str, Any]:
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise fail("messages", "must be a list of {role, content} objects")
    roles = [m.get("role") for m in messages]
    if "assistant" not in roles:
        raise fail("messages", "has no assistant turn to use as the output")
    last = len(roles) - 1 - roles[::-1].index("assistant")
    users = [m for m in messages[:last] if m.get("role") == "user"]
    if not users:
        raise fail("messages", "has no user turn before the last assistant turn")
    return users[-1].get("content", ""), messages[last].get("content")


def _output_text(output: Any, output_format: OutputFormat, key: str, fail: Any) -> str:
    if output_format.type == "json":
        if isinstance(output, str):
            try:
                output = json.loads(output)
            except json.JSONDecodeError as exc:
                raise fail(key, f"is not valid JSON for a json task ({exc.msg})") from None
        return json.dumps(output, ensure_ascii=False, sort_keys=True)
    if not isinstance(output, str):
        raise fail(key, f"must be a string, got {type(output).__name__}")
    if output_format.type == "label":
        label = output.strip()
        if label not in output_format.labels:
            allowed = ", ".join(output_format.labels)
            raise fail(key, f"label '{label}' is not in the task's label set ({allowed})")
        return label
    if not output.strip():
        raise fail(key, "is empty")
    return output


def split_examples(
    examples: Sequence[Example], test_fraction: float, seed: int, stratify: bool
) -> tuple[list[Example], list[Example]]:
    """Seeded split; stratified by output (label tasks) so both sides keep the label mix."""
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.output if stratify else ""].append(example)
    rng = random.Random(seed)
    train: list[Example] = []
    test: list[Example] = []
    for key in sorted(groups):
        members = list(groups[key])
        rng.shuffle(members)
        n_test = round(len(members) * test_fraction) if len(members) > 1 else 0
        test.extend(members[:n_test])
        train.extend(members[n_test:])
    rng.shuffle(train)
    rng.shuffle(test)
    return train, test


def sample_examples(
    examples: Sequence[Example], limit: int, seed: int, stratify: bool
) -> list[Example]:
    """Exactly `limit` examples, seeded; stratified keeps the label mix and every label it can."""
    if limit >= len(examples):
        return list(examples)
    rng = random.Random(seed)
    if not stratify:
        return rng.sample(list(examples), limit)
    groups: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        groups[example.output].append(example)
    quotas = _quotas({key: len(members) for key, members in groups.items()}, limit)
    chosen = [e for key in sorted(groups) for e in rng.sample(groups[key], quotas[key])]
    rng.shuffle(chosen)
    return chosen


def _quotas(sizes: dict[str, int], limit: int) -> dict[str, int]:
    """Largest-remainder shares of `limit`, with at least one per group when limit allows."""
    total = sum(sizes.values())
    floor = 1 if limit >= len(sizes) else 0
    quotas = {key: max(floor, int(limit * size / total)) for key, size in sizes.items()}
    by_remainder = sorted(sizes, key=lambda key: (-(limit * sizes[key] / total) % 1, key))
    while sum(quotas.values()) < limit:
        for key in by_remainder:
            if sum(quotas.values()) < limit and quotas[key] < sizes[key]:
                quotas[key] += 1
    while sum(quotas.values()) > limit:
        largest = max(quotas, key=lambda key: (quotas[key], key))
        quotas[largest] -= 1
    return quotas


def find_leaks(train: Sequence[Example], test: Sequence[Example]) -> list[str]:
    """Ids of test examples whose input appears verbatim (after trimming) in train."""
    seen = {example.input.strip() for example in train}
    return [example.id for example in test if example.input.strip() in seen]


def load_dataset(
    train_path: Path | str,
    test_path: Path | str | None,
    output_format: OutputFormat,
    *,
    test_fraction: float,
    seed: int,
    entry: DataFiles | ExtraDataset | None = None,
) -> Dataset:
    """Read the task's data; split it when there is no test file; report train/test leakage.
    `entry` (data, or one of datasets) gives the column mapping and, for errors, the task.yaml
    key and line each path was written at."""
    columns = sources.columns_of(entry) if entry is not None else None
    where = entry._where if entry is not None else {}
    with sources.keyed(where.get("train")):
        train = read_examples(train_path, output_format, columns, "train")
        stratify = stratify_by_label(output_format)
        if test_path is None:
            train, test = split_examples(train, test_fraction, seed, stratify)
            if not test or not train:
                problem = "too few examples to split into train and test"
                raise DataError(train_path, None, None, problem)
    if test_path is not None:
        with sources.keyed(where.get("test")):
            test = read_examples(test_path, output_format, columns, "test")
    return Dataset(train, test, "split" if test_path is None else "file", find_leaks(train, test))
