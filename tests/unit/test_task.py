"""task.yaml: loading, path resolution, one-line errors naming file, line and key; schema; hash."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tunewise.errors import TaskError, TunewiseError
from tunewise.strategies.few_shot import FewShotCandidate
from tunewise.strategies.zero_shot import ZeroShotCandidate
from tunewise.task.config import (
    GRADED_BY_FORMAT,
    METRICS_BY_FORMAT,
    JsonFormat,
    LabelFormat,
    Task,
    TextFormat,
)
from tunewise.task.loading import load_task, task_hash, task_schema

REPO = Path(__file__).resolve().parents[2]
SHIPPED = {
    "review-sentiment": REPO / "examples" / "review-sentiment" / "task.yaml",
    "support-intents": REPO / "tests" / "fixtures" / "support-intents" / "task.yaml",
}

CONTRACT_FIELDS = ("objective", "audience", "source_material", "output_format")
TOP_KEYS = (
    "name, contract, data, target, usage, prices, retrieval, model, models, seed, "
    "max_new_tokens, max_repairs, candidates, metrics, judge, datasets"
)

BASE = """\
name: demo-task
contract:
  objective: Classify the sentiment of one review.
  audience: Analysts.
  source_material: The review only.
  output_format:
    type: label
    labels: [positive, negative]
data:
  train: data/train.jsonl
"""


def write_task(folder: Path, text: str, name: str = "task.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def line_of(text: str, marker: str) -> int:
    """1-based line of the only line of `text` that contains `marker`."""
    hits = [number for number, line in enumerate(text.splitlines(), 1) if marker in line]
    assert len(hits) == 1, f"marker {marker!r} is on lines {hits}"
    return hits[0]


def task_error(path: Path) -> str:
    with pytest.raises(TaskError) as caught:
        load_task(path)
    message = str(caught.value)
    assert "\n" not in message, f"error is not one line: {message!r}"
    assert isinstance(caught.value, TunewiseError)
    return message


def assert_where(message: str, path: Path, line: int) -> None:
    assert message.startswith(f"{path}:{line}: "), message


def located_error(tmp_path: Path, text: str, line_text: str) -> str:
    """The one-line error of task `text`, checked to name the file and the line of `line_text`."""
    path = write_task(tmp_path, text)
    message = task_error(path)
    assert_where(message, path, line_of(text, line_text))
    return message


# --- the shipped task files -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_task_loads(name: str) -> None:
    path = SHIPPED[name]
    task = load_task(path)
    assert isinstance(task, Task)
    assert task.name == name
    fmt = task.contract.output_format
    assert isinstance(fmt, LabelFormat)
    assert len(fmt.labels) >= 2 and len(set(fmt.labels)) == len(fmt.labels)
    assert task.target is not None and task.target.metric == "accuracy"
    assert 0 <= task.target.min <= 1
    for key in ("train", "test"):
        data_path = getattr(task.data, key)
        assert data_path.is_absolute()
        assert data_path == (path.parent / "data" / f"{key}.jsonl").resolve()
        assert data_path.is_file()
    assert task.data.documents is None


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_task_paths_ignore_cwd(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task = load_task(SHIPPED[name])
    assert task.data.train == (SHIPPED[name].parent / "data" / "train.jsonl").resolve()
    assert task.data.train.is_file()
    assert not str(task.data.train).startswith(str(tmp_path))


def test_relative_task_path_resolves_against_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    write_task(project / "tasks", BASE + "  test: ../held/test.jsonl\n  documents: docs\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    task = load_task(Path("..") / "project" / "tasks" / "task.yaml")
    assert task.data.train == project / "tasks" / "data" / "train.jsonl"
    assert task.data.test == project / "held" / "test.jsonl"  # ".." is collapsed
    assert task.data.documents == project / "tasks" / "docs"
    for value in (task.data.train, task.data.test, task.data.documents):
        assert value is not None and value.is_absolute() and ".." not in value.parts
        assert elsewhere not in value.parents


def test_absolute_data_path_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "train.jsonl"
    path = write_task(tmp_path / "t", BASE.replace("data/train.jsonl", str(target)))
    assert load_task(path).data.train == target


def test_defaults(tmp_path: Path) -> None:
    task = load_task(write_task(tmp_path, BASE))
    assert task.target is None
    assert task.candidates == []
    assert task.data.test is None and task.data.test_fraction == 0.2
    assert task.seed == 0 and task.max_new_tokens is None
    assert task.usage.requests_per_month == 10_000 and task.usage.horizon_months == 12


def test_all_formats_and_candidates_parse(tmp_path: Path) -> None:
    text = BASE + (
        "candidates:\n"
        "  - strategy: zero-shot\n"
        "    name: plain\n"
        "  - {strategy: few-shot, k: 4, selection: similar, model: other-model}\n"
    )
    task = load_task(write_task(tmp_path, text))
    zero, few = task.candidates
    assert isinstance(zero, ZeroShotCandidate) and zero.name == "plain"
    assert isinstance(few, FewShotCandidate)
    assert (few.k, few.selection, few.model) == (4, "similar", "other-model")

    json_text = BASE.replace(
        "    type: label\n    labels: [positive, negative]\n",
        "    type: json\n    schema: {type: object, required: [a]}\n",
    )
    fmt = load_task(write_task(tmp_path / "j", json_text)).contract.output_format
    assert isinstance(fmt, JsonFormat)
    assert fmt.json_schema == {"type": "object", "required": ["a"]}

    text_text = BASE.replace(
        "    type: label\n    labels: [positive, negative]\n", "    type: text\n    max_chars: 80\n"
    )
    fmt = load_task(write_task(tmp_path / "x", text_text)).contract.output_format
    assert isinstance(fmt, TextFormat) and fmt.max_chars == 80


def test_labels_are_stripped(tmp_path: Path) -> None:
    text = BASE.replace("[positive, negative]", "['positive ', ' negative']")
    fmt = load_task(write_task(tmp_path, text)).contract.output_format
    assert isinstance(fmt, LabelFormat) and fmt.labels == ["positive", "negative"]


# --- unknown keys ---------------------------------------------------------------------------


def test_unknown_top_level_key(tmp_path: Path) -> None:
    text = BASE + "bogus: 1\n"
    message = located_error(tmp_path, text, "bogus:")
    assert "unknown key 'bogus'" in message
    assert f"allowed keys here: {TOP_KEYS}" in message


def test_unknown_key_in_contract(tmp_path: Path) -> None:
    text = BASE.replace("  audience: Analysts.\n", "  audience: Analysts.\n  tone: friendly\n")
    message = located_error(tmp_path, text, "tone:")
    assert "unknown key 'contract.tone'" in message
    assert "allowed keys here: objective, audience, source_material, output_format" in message


def test_unknown_key_in_label_output_format(tmp_path: Path) -> None:
    text = BASE.replace("    labels:", "    multi: true\n    labels:")
    message = located_error(tmp_path, text, "multi:")
    assert "unknown key 'contract.output_format.multi'" in message
    assert "allowed keys here: type, labels" in message
    assert ".label." not in message  # the discriminator pydantic adds is not shown


def test_unknown_key_in_json_output_format_lists_alias(tmp_path: Path) -> None:
    text = BASE.replace(
        "    type: label\n    labels: [positive, negative]\n",
        "    type: json\n    schema: {}\n    strict: true\n",
    )
    message = located_error(tmp_path, text, "strict:")
    assert "unknown key 'contract.output_format.strict'" in message
    assert "allowed keys here: type, schema" in message
    assert "json_schema" not in message


def test_unknown_key_in_candidate(tmp_path: Path) -> None:
    text = BASE + (
        "candidates:\n  - strategy: zero-shot\n  - strategy: few-shot\n    k: 4\n    shots: 3\n"
    )
    message = located_error(tmp_path, text, "shots:")
    assert "unknown key 'candidates.1.shots'" in message
    assert (
        "allowed keys here: strategy, name, model, max_repairs, decoding, k, selection" in message
    )
    assert "few-shot" not in message


def test_unknown_key_in_zero_shot_candidate(tmp_path: Path) -> None:
    text = BASE + "candidates:\n  - strategy: zero-shot\n    k: 3\n"
    message = located_error(tmp_path, text, "k: 3")
    assert "unknown key 'candidates.0.k'" in message
    assert "allowed keys here: strategy, name, model" in message


def test_unknown_key_in_data(tmp_path: Path) -> None:
    text = BASE + "  validation: v.jsonl\n"
    message = located_error(tmp_path, text, "validation:")
    assert "unknown key 'data.validation'" in message
    assert "allowed keys here: train, test, documents, updates, test_fraction" in message


def test_unknown_key_named_like_a_format_type(tmp_path: Path) -> None:
    text = BASE + "text: hello\n"
    message = located_error(tmp_path, text, "text: hello")
    assert "unknown key 'text'" in message


# --- missing and invalid values -------------------------------------------------------------


@pytest.mark.parametrize("field", CONTRACT_FIELDS)
def test_missing_contract_field(tmp_path: Path, field: str) -> None:
    lines = BASE.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"  {field}:"))
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1  # drop the nested block too
    text = "".join(lines[:start] + lines[end:])
    path = write_task(tmp_path, text)
    message = task_error(path)
    assert f"'contract.{field}'" in message
    assert "missing" in message
    assert_where(message, path, line_of(text, "contract:"))


@pytest.mark.parametrize("field", ("objective", "audience", "source_material"))
def test_empty_contract_field(tmp_path: Path, field: str) -> None:
    text = re.sub(rf"(?m)^  {field}: .*$", f"  {field}: ''", BASE)
    message = located_error(tmp_path, text, f"{field}:")
    assert f"'contract.{field}'" in message


@pytest.mark.parametrize("key", ("name", "contract", "data"))
def test_missing_top_level_key(tmp_path: Path, key: str) -> None:
    if key == "name":
        text = BASE.replace("name: demo-task\n", "")
    elif key == "data":
        text = BASE.split("data:")[0]
    else:
        text = "name: demo-task\ndata:\n  train: t.jsonl\n"
    message = task_error(write_task(tmp_path, text))
    assert f"missing required key '{key}'" in message


def test_missing_train_path(tmp_path: Path) -> None:
    text = BASE.replace("  train: data/train.jsonl\n", "  test: t.jsonl\n")
    message = located_error(tmp_path, text, "data:")
    assert "missing required key 'data.train'" in message


def test_unknown_output_type(tmp_path: Path) -> None:
    text = BASE.replace("    type: label\n", "    type: yaml\n")
    message = located_error(tmp_path, text, "output_format:")
    assert "'contract.output_format' has an unknown type" in message
    for tag in ("label", "json", "text"):
        assert f"'{tag}'" in message


def test_duplicate_labels(tmp_path: Path) -> None:
    text = BASE.replace("[positive, negative]", "[positive, negative, positive]")
    message = located_error(tmp_path, text, "labels:")
    assert "'contract.output_format.labels'" in message
    assert "distinct" in message


def test_labels_duplicate_after_stripping(tmp_path: Path) -> None:
    text = BASE.replace("[positive, negative]", "[positive, 'positive ']")
    message = task_error(write_task(tmp_path, text))
    assert "distinct" in message


def test_blank_label(tmp_path: Path) -> None:
    text = BASE.replace("[positive, negative]", "[positive, '  ']")
    message = task_error(write_task(tmp_path, text))
    assert "'contract.output_format.labels'" in message and "non-empty" in message


@pytest.mark.parametrize("labels", ("[positive]", "[]"))
def test_fewer_than_two_labels(tmp_path: Path, labels: str) -> None:
    text = BASE.replace("[positive, negative]", labels)
    message = located_error(tmp_path, text, "labels:")
    assert "'contract.output_format.labels'" in message
    assert "at least 2" in message


def test_unknown_candidate_strategy(tmp_path: Path) -> None:
    text = BASE + "candidates:\n  - strategy: zero-shot\n  - strategy: chain-of-thought\n"
    message = located_error(tmp_path, text, "chain-of-thought")
    assert "'candidates.1'" in message
    assert "'zero-shot'" in message and "'few-shot'" in message


def test_few_shot_selection_sim(tmp_path: Path) -> None:
    text = BASE + "candidates:\n  - strategy: few-shot\n    selection: sim\n"
    message = located_error(tmp_path, text, "selection:")
    assert "'candidates.0.selection'" in message
    assert "'stratified'" in message and "'similar'" in message


@pytest.mark.parametrize("k", (0, -1, 65))
def test_few_shot_k_out_of_range(tmp_path: Path, k: int) -> None:
    text = BASE + f"candidates:\n  - strategy: few-shot\n    k: {k}\n"
    message = located_error(tmp_path, text, f"k: {k}")
    assert "'candidates.0.k'" in message


@pytest.mark.parametrize(
    ("fmt", "metric"),
    (
        ("    type: label\n    labels: [positive, negative]\n", "bleu"),
        ("    type: label\n    labels: [positive, negative]\n", "token_f1"),
        ("    type: text\n", "accuracy"),
        ("    type: json\n", "macro_f1"),
    ),
)
def test_target_metric_must_fit_format(tmp_path: Path, fmt: str, metric: str) -> None:
    text = BASE.replace("    type: label\n    labels: [positive, negative]\n", fmt)
    text += f"target:\n  metric: {metric}\n  min: 0.5\n"
    path = write_task(tmp_path, text)
    message = task_error(path)
    kind = fmt.split("type: ")[1].split()[0]
    assert_where(message, path, line_of(text, "metric:"))
    assert "target.metric" in message and f"'{metric}'" in message
    assert ", ".join(METRICS_BY_FORMAT[kind]) in message


@pytest.mark.parametrize("kind", sorted(METRICS_BY_FORMAT))
def test_every_listed_metric_is_accepted(tmp_path: Path, kind: str) -> None:
    fmt = "    type: label\n    labels: [a, b]\n" if kind == "label" else f"    type: {kind}\n"
    body = BASE.replace("    type: label\n    labels: [positive, negative]\n", fmt)
    for metric in METRICS_BY_FORMAT[kind] + GRADED_BY_FORMAT[kind]:
        path = write_task(tmp_path / metric, body + f"target: {{metric: {metric}, min: 0.7}}\n")
        target = load_task(path).target
        assert target is not None and target.metric == metric


@pytest.mark.parametrize("value", ("-0.1", "1.5", "85"))
def test_target_min_outside_unit_interval(tmp_path: Path, value: str) -> None:
    text = BASE + f"target:\n  metric: accuracy\n  min: {value}\n"
    message = located_error(tmp_path, text, "min:")
    assert "'target.min'" in message


@pytest.mark.parametrize("value", ("0", "1", "0.85"))
def test_target_min_bounds_inclusive(tmp_path: Path, value: str) -> None:
    task = load_task(write_task(tmp_path, BASE + f"target: {{metric: accuracy, min: {value}}}\n"))
    assert task.target is not None and task.target.min == float(value)


@pytest.mark.parametrize("fraction", ("0", "1", "1.5"))
def test_test_fraction_outside_open_interval(tmp_path: Path, fraction: str) -> None:
    text = BASE + f"  test_fraction: {fraction}\n"
    message = located_error(tmp_path, text, "test_fraction:")
    assert "'data.test_fraction'" in message


def test_bad_task_name(tmp_path: Path) -> None:
    text = BASE.replace("name: demo-task", "name: 'has spaces'")
    path = write_task(tmp_path, text)
    message = task_error(path)
    assert_where(message, path, 1)
    assert "'name'" in message


# --- files that are not task files ----------------------------------------------------------


def test_not_yaml(tmp_path: Path) -> None:
    path = write_task(tmp_path, "name: [unclosed\n")
    message = task_error(path)
    assert message.startswith(f"{path}:")
    assert "not valid YAML" in message


def test_not_yaml_names_the_line(tmp_path: Path) -> None:
    path = write_task(tmp_path, "name: ok\ncontract:\n  objective: a: b\n")
    message = task_error(path)
    assert_where(message, path, 3)
    assert "not valid YAML" in message


def test_yaml_list_at_top_level(tmp_path: Path) -> None:
    path = write_task(tmp_path, "- name: demo\n- contract: {}\n")
    message = task_error(path)
    assert message.startswith(f"{path}: ")
    assert "mapping" in message


@pytest.mark.parametrize("text", ("", "   \n\n", "# only a comment\n", "just a string\n"))
def test_empty_or_scalar_file(tmp_path: Path, text: str) -> None:
    path = write_task(tmp_path, text)
    message = task_error(path)
    assert message.startswith(f"{path}: ")
    assert "mapping" in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "task.yaml"
    message = task_error(path)
    assert message == f"{path}: no such task file"


def test_folder_instead_of_file(tmp_path: Path) -> None:
    message = task_error(tmp_path)
    assert message.startswith(f"{tmp_path}: ")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "task.yaml"
    path.write_bytes(b"name: caf\xe9\n")
    message = task_error(path)
    assert message.startswith(f"{path}: cannot read task file")


# --- schema and hash ------------------------------------------------------------------------


def test_task_schema() -> None:
    schema = task_schema()
    assert isinstance(schema, dict)
    assert json.loads(json.dumps(schema)) == schema
    assert set(schema["required"]) == {"name", "contract", "data"}
    assert schema["additionalProperties"] is False
    contract = schema["$defs"]["Contract"]
    assert set(contract["properties"]) == {*CONTRACT_FIELDS, "answer_language"}
    assert set(contract["required"]) == set(CONTRACT_FIELDS)
    json_format = schema["$defs"]["JsonFormat"]["properties"]
    assert "schema" in json_format and "json_schema" not in json_format
    assert "json_schema" not in json.dumps(schema)


def test_task_hash_stable(tmp_path: Path) -> None:
    path = write_task(tmp_path, BASE)
    first = task_hash(load_task(path))
    assert re.fullmatch(r"[0-9a-f]{64}", first)
    assert task_hash(load_task(path)) == first
    assert task_hash(load_task(path)) == task_hash(load_task(path))


@pytest.mark.parametrize(
    ("old", "new"),
    (
        ("Classify the sentiment of one review.", "Classify the tone of one review."),
        ("Analysts.", "Engineers."),
        ("The review only.", "The review and its title."),
        ("[positive, negative]", "[positive, negative, neutral]"),
    ),
)
def test_task_hash_changes_with_contract(tmp_path: Path, old: str, new: str) -> None:
    before = task_hash(load_task(write_task(tmp_path / "a", BASE)))
    assert old in BASE
    after = task_hash(load_task(write_task(tmp_path / "b", BASE.replace(old, new))))
    assert before != after


def test_task_hash_ignores_formatting(tmp_path: Path) -> None:
    flow = BASE.replace(
        "  output_format:\n    type: label\n    labels: [positive, negative]\n",
        "  output_format: {labels: [positive, negative], type: label}  # same thing\n",
    )
    folder = tmp_path / "same"
    one = task_hash(load_task(write_task(folder, BASE, "one.yaml")))
    two = task_hash(load_task(write_task(folder, flow, "two.yaml")))
    assert one == two


def test_keys_added_later_and_left_unset_keep_a_tasks_hash() -> None:
    # The hash examples/review-sentiment had before metrics:, judge:, the column mapping and
    # prompt_file existed: the ledger and the caches keep recognising the task.
    shipped = Path(__file__).resolve().parents[2] / "examples" / "review-sentiment" / "task.yaml"
    expected = "5ce6b4025a9f201de48e35dddbc2f955508cf4fcf234e2591ad6e1bab972c61f"
    assert task_hash(load_task(shipped)) == expected


def test_a_judge_or_a_user_metric_changes_the_hash(tmp_path: Path) -> None:
    before = task_hash(load_task(write_task(tmp_path / "a", BASE)))
    judged = task_hash(load_task(write_task(tmp_path / "b", BASE + "judge: {scale: 4}\n")))
    assert before != judged


def test_task_hash_independent_of_folder(tmp_path: Path) -> None:
    first = write_task(tmp_path / "here", BASE)
    second = tmp_path / "there" / "task.yaml"
    second.parent.mkdir()
    shutil.copy(first, second)
    assert task_hash(load_task(first)) == task_hash(load_task(second))


# --- named endpoints ------------------------------------------------------------------------

ENDPOINTS = """\
models:
  qwen-vllm:
    model: Qwen/Qwen2.5-7B-Instruct
    base_url: http://127.0.0.1:8000/v1
    api_key_env: VLLM_API_KEY
    prices: {input_per_million: 0.2, output_per_million: 0.6}
  gpt-mini:
    model: gpt-4.1-mini
model: qwen-vllm
"""


def test_models_section_names_endpoints_and_their_prices(tmp_path: Path) -> None:
    from tunewise.core.costs import TokenPrice
    from tunewise.deciding.from_results import price_list

    task = load_task(write_task(tmp_path, BASE + ENDPOINTS))
    assert task.model == "qwen-vllm"
    assert task.models["qwen-vllm"].api_key_env == "VLLM_API_KEY"
    assert task.models["gpt-mini"].base_url == "https://api.openai.com/v1"
    assert price_list(task).tokens == {"qwen-vllm": TokenPrice(0.2, 0.6)}


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ("    base_url: 127.0.0.1:8000", "base_url"),
        ("    api_key_env: sk-live-not-a-name", "api_key_env"),
        ("    concurrency: 0", "concurrency"),
        ("    api_key: sk-abc", "api_key"),
    ],
)
def test_bad_endpoint_settings_name_the_key(tmp_path: Path, line: str, field: str) -> None:
    text = BASE + "models:\n  mine:\n    model: m\n" + line + "\n"
    message = task_error(write_task(tmp_path, text))
    assert f"models.mine.{field}" in message, message
