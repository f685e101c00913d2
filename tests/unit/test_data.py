"""Examples in the common formats, errors naming file/line/field, the seeded split, leakage."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tunewise.errors import DataError, TunewiseError
from tunewise.task.config import JsonFormat, LabelFormat, TextFormat
from tunewise.task.data import (
    FORMATS,
    Dataset,
    Example,
    find_leaks,
    load_dataset,
    read_examples,
    sample_examples,
    split_examples,
)
from tunewise.task.loading import load_task

REPO = Path(__file__).resolve().parents[2]

LABELS = ["positive", "negative", "neutral"]
LABEL = LabelFormat(type="label", labels=LABELS)
JSON = JsonFormat(type="json")
TEXT = TextFormat(type="text")


def write_lines(path: Path, lines: list[Any]) -> Path:
    """One line per item: dicts and lists as JSON, strings as they are."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(line if isinstance(line, str) else json.dumps(line) for line in lines)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def data_error(path: Path, fmt: Any = LABEL) -> DataError:
    with pytest.raises(DataError) as caught:
        read_examples(path, fmt)
    error = caught.value
    assert isinstance(error, TunewiseError)
    assert "\n" not in str(error)
    assert error.path == path
    return error


def assert_names(error: DataError, path: Path, line: int | None, field: str | None) -> None:
    assert (error.line, error.field) == (line, field), str(error)
    where = f"{path}:{line}:" if line else f"{path}:"
    assert str(error).startswith(where), str(error)
    if field:
        assert f"field '{field}'" in str(error)


def make(label: str, index: int, text: str | None = None) -> Example:
    return Example(f"{label}-{index}", text or f"{label} text {index}", label, f"f:{index}")


def labelled(counts: dict[str, int]) -> list[Example]:
    return [make(label, i) for label, n in counts.items() for i in range(n)]


# --- record formats -------------------------------------------------------------------------


def test_input_output_records(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "train.jsonl",
        [
            {"id": "a1", "input": "Great phone.", "output": "positive"},
            {"input": "Broke in a day.", "output": " negative "},
        ],
    )
    first, second = read_examples(path, LABEL)
    assert first == Example("a1", "Great phone.", "positive", "train.jsonl:1", {})
    assert (second.id, second.input, second.output) == ("train-2", "Broke in a day.", "negative")
    assert second.source == "train.jsonl:2"


def test_openai_chat_records(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "system", "content": "You classify reviews."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "neutral"},
            {"role": "user", "content": "It is wonderful."},
            {"role": "assistant", "content": "positive"},
        ]
    }
    simple = {
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": "Awful."},
            {"role": "assistant", "content": "negative"},
        ],
        "id": "chat-2",
    }
    multi, single = read_examples(write_lines(tmp_path / "chat.jsonl", [record, simple]), LABEL)
    assert (multi.input, multi.output, multi.id) == ("It is wonderful.", "positive", "chat-1")
    assert (single.input, single.output, single.id) == ("Awful.", "negative", "chat-2")
    assert multi.extra == {} and single.extra == {}


def test_chat_uses_last_user_turn_before_last_assistant(tmp_path: Path) -> None:
    record = {
        "messages": [
            {"role": "user", "content": "the question"},
            {"role": "assistant", "content": "negative"},
            {"role": "user", "content": "a trailing turn with no answer"},
        ]
    }
    (example,) = read_examples(write_lines(tmp_path / "c.jsonl", [record]), LABEL)
    assert (example.input, example.output) == ("the question", "negative")


def test_alpaca_records(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Classify this.", "input": "Lovely.", "output": "positive"},
            {"instruction": "Is this review good?", "input": "", "output": "negative"},
            {"instruction": "Only an instruction.", "output": "neutral"},
            {"instruction": "Whitespace input.", "input": "   ", "output": "neutral"},
        ],
    )
    joined, empty, absent, blank = read_examples(path, LABEL)
    assert joined.input == "Classify this.\n\nLovely."
    assert empty.input == "Is this review good?"
    assert absent.input == "Only an instruction."
    assert blank.input == "Whitespace input."
    assert [e.output for e in (joined, empty, absent, blank)] == [
        "positive",
        "negative",
        "neutral",
        "neutral",
    ]
    assert all(e.extra == {} for e in (joined, empty, absent, blank))


def test_prompt_completion_records(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "pc.jsonl", [{"prompt": "Meh.", "completion": "neutral"}])
    (example,) = read_examples(path, LABEL)
    assert (example.input, example.output, example.extra) == ("Meh.", "neutral", {})


def test_csv_with_header(tmp_path: Path) -> None:
    path = tmp_path / "train.csv"
    path.write_text(
        'input,output\nGood value.,positive\n"Line one,\nline two, with commas",negative\n'
        "Last one.,neutral\n",
        encoding="utf-8",
    )
    first, quoted, last = read_examples(path, LABEL)
    assert (first.input, first.output, first.id) == ("Good value.", "positive", "train-2")
    assert quoted.input == "Line one,\nline two, with commas"
    assert (quoted.output, quoted.id) == ("negative", "train-3")
    assert (last.input, last.id, last.source) == ("Last one.", "train-5", "train.csv:5")


def test_csv_extra_columns_and_id(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("id,input,output,lang\nr1,Great.,positive,en\n", encoding="utf-8")
    (example,) = read_examples(path, LABEL)
    assert example.id == "r1"
    assert example.extra == {"lang": "en"}


def test_csv_error_names_physical_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text('input,output\n"two\nlines",positive\nthird,bogus\n', encoding="utf-8")
    assert_names(data_error(path), path, 4, "output")


def test_csv_too_many_values(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("input,output\nfine,positive\na,positive,extra\n", encoding="utf-8")
    error = data_error(path)
    assert_names(error, path, 3, None)
    assert "header" in str(error)


def test_csv_line_after_blank_line(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("input,output\nfine,positive\n\nbad,bogus\n", encoding="utf-8")
    assert_names(data_error(path), path, 4, "output")


def test_utf8_bom_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "bom.jsonl"
    body = json.dumps({"input": "Café ok.", "output": "positive"}) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    (example,) = read_examples(path, LABEL)
    assert (example.input, example.output) == ("Café ok.", "positive")


def test_utf8_bom_csv(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfinput,output\nNice.,positive\n")
    (example,) = read_examples(path, LABEL)
    assert (example.input, example.output, example.extra) == ("Nice.", "positive", {})


def test_blank_lines_skipped(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "gaps.jsonl",
        [
            "",
            {"input": "one", "output": "positive"},
            "   ",
            "\t",
            {"input": "two", "output": "negative"},
            "",
        ],
    )
    one, two = read_examples(path, LABEL)
    assert (one.id, one.source) == ("gaps-2", "gaps.jsonl:2")
    assert (two.id, two.source) == ("gaps-5", "gaps.jsonl:5")


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(
        b'{"input": "a", "output": "positive"}\r\n{"input": "b", "output": "neutral"}\r\n'
    )
    assert [e.output for e in read_examples(path, LABEL)] == ["positive", "neutral"]


def test_extra_keys_preserved(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "x.jsonl",
        [
            {"id": 7, "input": "a", "output": "positive", "lang": "en", "meta": {"k": [1]}},
            {"prompt": "b", "completion": "neutral", "score": 0.5},
            {"instruction": "c", "input": "d", "output": "neutral", "source": "web"},
            {
                "messages": [
                    {"role": "user", "content": "e"},
                    {"role": "assistant", "content": "neutral"},
                ],
                "tags": ["t"],
            },
        ],
    )
    plain, pc, alpaca, chat = read_examples(path, LABEL)
    assert plain.extra == {"lang": "en", "meta": {"k": [1]}}
    assert plain.id == "7"  # ids become strings
    assert pc.extra == {"score": 0.5}
    assert alpaca.extra == {"source": "web"}
    assert chat.extra == {"tags": ["t"]}


def test_text_format_keeps_output_verbatim(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [{"input": "q", "output": "  An answer.\n"}])
    (example,) = read_examples(path, TEXT)
    assert example.output == "  An answer.\n"


# --- json output ----------------------------------------------------------------------------


def test_json_output_canonical(tmp_path: Path) -> None:
    value = {"b": 1, "a": {"z": [1, 2], "y": "é"}}
    canonical = json.dumps(value, sort_keys=True, ensure_ascii=False)
    path = write_lines(
        tmp_path / "j.jsonl",
        [
            {"input": "as object", "output": value},
            {"input": "as string", "output": json.dumps(value, indent=2)},
            {"prompt": "as completion", "completion": '{"a": {"y": "é", "z": [1, 2]}, "b": 1}'},
        ],
    )
    examples = read_examples(path, JSON)
    assert [e.output for e in examples] == [canonical] * 3
    assert canonical.startswith('{"a": ')
    assert json.loads(examples[0].output) == value


def test_json_output_scalars_and_lists(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "j.jsonl",
        [{"input": "a", "output": [3, 1]}, {"input": "b", "output": "42"}],
    )
    assert [e.output for e in read_examples(path, JSON)] == ["[3, 1]", "42"]


def test_json_output_not_json(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "j.jsonl",
        [{"input": "a", "output": {"k": 1}}, {"input": "b", "output": "{not json"}],
    )
    error = data_error(path, JSON)
    assert_names(error, path, 2, "output")
    assert "not valid JSON" in str(error)


# --- errors name file, line and field -------------------------------------------------------


GOOD = {"input": "fine", "output": "positive"}


def test_malformed_json_line_3(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", [GOOD, GOOD | {"id": "x"}, '{"input": "a", "output"'])
    error = data_error(path)
    assert_names(error, path, 3, None)
    assert "malformed JSON" in str(error)


def test_missing_output(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl", [GOOD, {"input": "no answer"}])
    error = data_error(path)
    assert_names(error, path, 2, "output")
    assert "missing" in str(error)


@pytest.mark.parametrize(
    ("record", "field"),
    (
        ({"input": "x", "output": None}, "output"),
        ({"prompt": "x"}, "completion"),
        ({"instruction": "x", "input": "y"}, "output"),
    ),
)
def test_missing_output_every_format(tmp_path: Path, record: dict[str, Any], field: str) -> None:
    path = write_lines(tmp_path / "m.jsonl", [record])
    error = data_error(path)
    assert_names(error, path, 1, field)
    assert "missing" in str(error)


def test_label_outside_label_set(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "l.jsonl", [GOOD, GOOD | {"id": "2"}, {"input": "x", "output": "happy"}]
    )
    error = data_error(path)
    assert_names(error, path, 3, "output")
    assert "'happy'" in str(error)
    assert ", ".join(LABELS) in str(error)


def test_label_must_be_string(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "l.jsonl", [{"input": "x", "output": 1}])
    assert_names(data_error(path), path, 1, "output")


@pytest.mark.parametrize("value", ("", "   \t\n"))
def test_empty_or_whitespace_input(tmp_path: Path, value: str) -> None:
    path = write_lines(tmp_path / "e.jsonl", [GOOD, {"input": value, "output": "positive"}])
    error = data_error(path)
    assert_names(error, path, 2, "input")
    assert "empty" in str(error)


@pytest.mark.parametrize("value", (5, ["a"], {"a": 1}, True))
def test_non_string_input(tmp_path: Path, value: Any) -> None:
    path = write_lines(tmp_path / "n.jsonl", [{"input": value, "output": "positive"}])
    error = data_error(path)
    assert_names(error, path, 1, "input")
    assert "string" in str(error)


def test_empty_prompt(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "p.jsonl", [{"prompt": " ", "completion": "neutral"}])
    assert_names(data_error(path), path, 1, "prompt")


def test_non_string_instruction(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [{"instruction": 3, "output": "neutral"}])
    assert_names(data_error(path), path, 1, "instruction")


def test_empty_text_output(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", [{"input": "q", "output": "  "}])
    assert_names(data_error(path, TEXT), path, 1, "output")


def test_undecodable_bytes_line_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b'\n{"input": "\xff\xfe", "output": "positive"}\n')
    error = data_error(path)
    assert_names(error, path, 2, None)
    assert "UTF-8" in str(error)


def test_undecodable_bytes_csv(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"input,output\nok,positive\n\xff\xfe,negative\n")
    assert_names(data_error(path), path, 3, None)


@pytest.mark.parametrize("content", (b"", b"   \n\n\t \n"))
def test_empty_or_whitespace_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_bytes(content)
    error = data_error(path)
    assert_names(error, path, None, None)
    assert "empty" in str(error)


def test_csv_header_only(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_text("input,output\n", encoding="utf-8")
    error = data_error(path)
    assert_names(error, path, None, None)
    assert "no examples" in str(error)


def test_json_array_line(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [GOOD, ["input", "output"]])
    error = data_error(path)
    assert_names(error, path, 2, None)
    assert "JSON object" in str(error)


def test_unrecognised_record(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "u.jsonl", [{"text": "a", "label": "positive"}])
    error = data_error(path)
    assert_names(error, path, 1, None)
    message = str(error)
    assert "unrecognised record" in message
    assert "label, text" in message
    for accepted in FORMATS:
        assert accepted in message


def test_messages_without_assistant(tmp_path: Path) -> None:
    record = {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    path = write_lines(tmp_path / "c.jsonl", [GOOD, record])
    error = data_error(path)
    assert_names(error, path, 2, "messages")
    assert "assistant" in str(error)


def test_messages_without_user_before_assistant(tmp_path: Path) -> None:
    record = {"messages": [{"role": "assistant", "content": "neutral"}]}
    path = write_lines(tmp_path / "c.jsonl", [record])
    assert_names(data_error(path), path, 1, "messages")


@pytest.mark.parametrize("messages", ("hello", [["user", "hi"]], {"role": "user"}))
def test_messages_not_a_list_of_objects(tmp_path: Path, messages: Any) -> None:
    path = write_lines(tmp_path / "c.jsonl", [{"messages": messages}])
    assert_names(data_error(path), path, 1, "messages")


def test_duplicate_ids(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "d.jsonl",
        [
            {"id": "same", "input": "a", "output": "positive"},
            {"id": "other", "input": "b", "output": "positive"},
            {"id": "same", "input": "c", "output": "negative"},
        ],
    )
    error = data_error(path)
    assert_names(error, path, 3, "id")
    assert "'same'" in str(error) and "d.jsonl:1" in str(error)


def test_folder_passed_as_file(tmp_path: Path) -> None:
    folder = tmp_path / "train.jsonl"
    folder.mkdir()
    error = data_error(folder)
    assert_names(error, folder, None, None)
    assert "folder" in str(error)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.jsonl"
    error = data_error(path)
    assert_names(error, path, None, None)
    assert str(error) == f"{path}: no such file"


# --- split, sample, leaks -------------------------------------------------------------------


def ids(examples: list[Example]) -> list[str]:
    return [e.id for e in examples]


def test_split_deterministic_and_seeded() -> None:
    examples = labelled({"positive": 20, "negative": 15, "neutral": 10})
    first = split_examples(examples, 0.2, 7, True)
    again = split_examples(list(examples), 0.2, 7, True)
    assert (ids(first[0]), ids(first[1])) == (ids(again[0]), ids(again[1]))
    other = split_examples(examples, 0.2, 8, True)
    assert set(ids(other[1])) != set(ids(first[1]))


@pytest.mark.parametrize("stratify", (True, False))
@pytest.mark.parametrize("fraction", (0.1, 0.2, 0.33, 0.5))
def test_split_partitions_all(stratify: bool, fraction: float) -> None:
    examples = labelled({"positive": 23, "negative": 11, "neutral": 7})
    train, test = split_examples(examples, fraction, 3, stratify)
    assert set(ids(train)).isdisjoint(ids(test))
    assert sorted(ids(train) + ids(test)) == sorted(ids(examples))
    assert len(train) + len(test) == len(examples)
    assert test and train
    assert abs(len(test) - fraction * len(examples)) <= (3 if stratify else 1)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("fraction", (0.15, 0.2, 0.3))
def test_split_stratified(seed: int, fraction: float) -> None:
    counts = {"positive": 40, "negative": 17, "neutral": 6}
    train, test = split_examples(labelled(counts), fraction, seed, True)
    in_test = Counter(e.output for e in test)
    in_train = Counter(e.output for e in train)
    for label, total in counts.items():
        assert abs(in_test[label] - fraction * total) <= 1, (label, in_test)
        assert in_test[label] + in_train[label] == total


def test_split_keeps_singletons_in_train() -> None:
    examples = labelled({"positive": 10, "negative": 1})
    train, test = split_examples(examples, 0.5, 0, True)
    assert "negative" not in {e.output for e in test}
    assert "negative" in {e.output for e in train}


@pytest.mark.parametrize("limit", (3, 6, 9, 12, 15))
def test_sample_exact_limit_covers_labels(limit: int) -> None:
    examples = labelled({"positive": 10, "negative": 10, "neutral": 10})
    sample = sample_examples(examples, limit, 0, True)
    assert len(sample) == limit
    assert len(set(ids(sample))) == limit
    assert set(ids(sample)) <= set(ids(examples))
    assert {e.output for e in sample} == set(LABELS)
    assert ids(sample_examples(examples, limit, 0, True)) == ids(sample)


@pytest.mark.parametrize("limit", (1, 5, 17, 29))
def test_sample_exact_limit_unstratified(limit: int) -> None:
    examples = labelled({"positive": 10, "negative": 10, "neutral": 10})
    sample = sample_examples(examples, limit, 4, False)
    assert len(sample) == limit
    assert ids(sample_examples(examples, limit, 4, False)) == ids(sample)


def test_sample_limit_not_below_size_returns_all() -> None:
    examples = labelled({"positive": 3, "negative": 2})
    assert ids(sample_examples(examples, 5, 0, True)) == ids(examples)
    assert ids(sample_examples(examples, 50, 0, True)) == ids(examples)


@pytest.mark.parametrize("limit", (1, 4, 7))
def test_sample_exact_limit_rounding(limit: int) -> None:
    examples = labelled({"positive": 10, "negative": 10, "neutral": 10})
    assert len(sample_examples(examples, limit, 0, True)) == limit


def test_sample_covers_rare_labels() -> None:
    examples = labelled({"positive": 100, "negative": 1, "neutral": 1})
    sample = sample_examples(examples, 3, 0, True)
    assert {e.output for e in sample} == set(LABELS)


def test_find_leaks_after_trimming() -> None:
    train = [make("positive", 0, "  Same text. "), make("negative", 1, "other")]
    test = [
        Example("t1", "Same text.", "positive", "t:1"),
        Example("t2", "same text.", "positive", "t:2"),  # case differs: not a leak
        Example("t3", "\tother\n", "negative", "t:3"),
        Example("t4", "new", "neutral", "t:4"),
    ]
    assert find_leaks(train, test) == ["t1", "t3"]
    assert find_leaks(train, []) == []
    assert find_leaks([], test) == []


def write_rows(path: Path, rows: list[tuple[str, str]]) -> Path:
    return write_lines(path, [{"input": i, "output": o} for i, o in rows])


def test_load_dataset_splits_without_test_file(tmp_path: Path) -> None:
    rows = [(f"text {label} {i}", label) for label in LABELS for i in range(10)]
    train_path = write_rows(tmp_path / "train.jsonl", rows)
    dataset = load_dataset(train_path, None, LABEL, test_fraction=0.2, seed=1)
    assert dataset.test_source == "split"
    assert len(dataset.test) == 6 and len(dataset.train) == 24
    assert Counter(e.output for e in dataset.test) == dict.fromkeys(LABELS, 2)
    assert set(ids(dataset.train)).isdisjoint(ids(dataset.test))
    assert dataset.leaked == []
    again = load_dataset(train_path, None, LABEL, test_fraction=0.2, seed=1)
    assert again.hash == dataset.hash
    other = load_dataset(train_path, None, LABEL, test_fraction=0.2, seed=2)
    assert other.hash != dataset.hash


def test_load_dataset_reads_test_file(tmp_path: Path) -> None:
    train_path = write_rows(tmp_path / "train.jsonl", [("a", "positive"), ("b", "negative")])
    test_path = write_rows(tmp_path / "test.jsonl", [(" a ", "positive"), ("c", "neutral")])
    dataset = load_dataset(train_path, test_path, LABEL, test_fraction=0.2, seed=0)
    assert dataset.test_source == "file"
    assert ids(dataset.train) == ["train-1", "train-2"]
    assert ids(dataset.test) == ["test-1", "test-2"]
    assert dataset.leaked == ["test-1"]


def test_load_dataset_too_few_to_split(tmp_path: Path) -> None:
    train_path = write_rows(tmp_path / "train.jsonl", [("a", "positive"), ("b", "negative")])
    with pytest.raises(DataError) as caught:
        load_dataset(train_path, None, LABEL, test_fraction=0.2, seed=0)
    assert caught.value.path == train_path
    assert "too few" in str(caught.value)


def test_load_dataset_bad_test_file_names_it(tmp_path: Path) -> None:
    train_path = write_rows(tmp_path / "train.jsonl", [("a", "positive"), ("b", "negative")])
    test_path = write_rows(tmp_path / "test.jsonl", [("c", "positive"), ("d", "bogus")])
    with pytest.raises(DataError) as caught:
        load_dataset(train_path, test_path, LABEL, test_fraction=0.2, seed=0)
    assert (caught.value.path, caught.value.line, caught.value.field) == (test_path, 2, "output")


def test_dataset_hash_changes_with_one_output(tmp_path: Path) -> None:
    rows = [("a", "positive"), ("b", "negative")]
    train_path = write_rows(tmp_path / "train.jsonl", rows)
    test_path = write_rows(tmp_path / "test.jsonl", [("c", "neutral"), ("d", "neutral")])
    before = load_dataset(train_path, test_path, LABEL, test_fraction=0.2, seed=0)
    assert len(before.hash) == 64
    assert load_dataset(train_path, test_path, LABEL, test_fraction=0.2, seed=0).hash == before.hash
    write_rows(test_path, [("c", "neutral"), ("d", "positive")])
    after = load_dataset(train_path, test_path, LABEL, test_fraction=0.2, seed=0)
    assert after.hash != before.hash


def test_dataset_hash_sees_the_split_boundary() -> None:
    a, b = make("positive", 0), make("negative", 1)
    assert Dataset([a], [b], "file", []).hash != Dataset([a, b], [], "file", []).hash
    assert Dataset([a], [b], "file", []).hash != Dataset([b], [a], "file", []).hash
    changed = Example(a.id, a.input, "negative", a.source)
    assert Dataset([a], [b], "file", []).hash != Dataset([changed], [b], "file", []).hash


@pytest.mark.parametrize(
    "task_file",
    (
        REPO / "examples" / "review-sentiment" / "task.yaml",
        REPO / "tests" / "fixtures" / "support-intents" / "task.yaml",
    ),
)
def test_shipped_data_loads(task_file: Path) -> None:
    task = load_task(task_file)
    dataset = load_dataset(
        task.data.train,
        task.data.test,
        task.contract.output_format,
        test_fraction=task.data.test_fraction,
        seed=task.seed,
    )
    assert dataset.test_source == "file"
    assert dataset.train and dataset.test
    fmt = task.contract.output_format
    assert isinstance(fmt, LabelFormat)
    assert {e.output for e in dataset.test} <= set(fmt.labels)
