"""Distillation with a scripted teacher: which labels are kept, what the teacher and the student
see, where the inputs come from, the record, the cost, results.json and the report.

Training is replaced by a recorder (the LoRA recipe itself is tested in test_finetune.py), so
what these tests check is what reaches the trainer."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import (
    SENTIMENT_TEST,
    SENTIMENT_TRAIN,
    TASK_YAML,
    ScriptedBackend,
    measure,
    read_run,
    write_jsonl,
)

from tunewise.core.costs import CostInputs, PriceList, TokenPrice, setup_cost
from tunewise.core.setup import Setup
from tunewise.errors import DataError, TaskError, TunewiseError
from tunewise.models.backend import LabelScores, Message
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.records.results import load_schema, write_run
from tunewise.strategies.lora import LoraCandidate
from tunewise.strategies.lora import adapter as lora
from tunewise.strategies.lora import teacher as labelling
from tunewise.task.data import Example
from tunewise.task.loading import load_task

HUMAN = dict(SENTIMENT_TRAIN)
FLIP = {"positive": "negative", "negative": "positive", "neutral": "neutral"}


class Teacher(ScriptedBackend):
    """A teacher that answers labels as an API model might: its answer as it is (even outside the
    label set), with the probability the script gives it."""

    def __init__(self, answers: dict[str, tuple[str, float]], remote: bool = False) -> None:
        super().__init__()
        self.spec = "teacher:x"
        self.remote = remote
        self.answers = answers

    def fingerprint(self) -> str:
        return "teacher-weights-v1"

    def _score(self, messages: Sequence[Message], labels: Sequence[str]) -> LabelScores:
        self._record(messages)
        label, probability = self.answers.get(messages[-1]["content"], ("neutral", 0.9))
        rest = (1 - probability) / max(1, len(labels) - 1)
        probabilities = {x: probability if x == label else rest for x in labels}
        return LabelScores(label, probabilities, self.count_tokens(messages), 2, 0.01)


class Trained:
    """What the recorder put in place of train_adapter_for saw, and the adapter it returned."""

    def __init__(self, student: ScriptedBackend) -> None:
        self.student = student
        self.examples: list[Example] = []
        self.recipe: dict[str, Any] = {}

    def __call__(self, task, spec, base, train, prompt, recipe, name, progress):  # type: ignore[no-untyped-def]
        self.examples, self.recipe = list(train), recipe
        return self

    # The Adapter interface lora.prepare uses.
    @property
    def record(self) -> dict[str, Any]:
        return {"seconds": 1.5}

    def model(self, base: Any, strategy: str) -> ScriptedBackend:
        return self.student

    def params(self, base: Any) -> dict[str, Any]:
        return {"base_model": base.spec, "train_examples": len(self.examples)}

    cached = False
    folder = Path("adapter")

    def setup(self, task: Any, distillation: Any) -> Setup:
        # The real record of training and labelling, with no adapter folder to copy.
        return replace(lora.Adapter.setup(self, task, distillation), adapter=None)  # type: ignore[arg-type]


@pytest.fixture
def teacher(home: Path) -> Iterator[Teacher]:
    """Flips positive and negative; unsure (0.4) about every input with 'box' in it; answers
    'maybe' (not a label) to 'it is a blender'."""
    answers = {x: (FLIP[y], 0.4 if "box" in x else 0.9) for x, y in SENTIMENT_TRAIN}
    answers["it is a blender"] = ("maybe", 0.9)
    backend = Teacher(answers)
    register_backend("teacher", lambda rest: backend)
    yield backend
    unregister_backend("teacher")


@pytest.fixture
def trained(scripted: ScriptedBackend, monkeypatch: pytest.MonkeyPatch) -> Trained:
    """lora.prepare accepts the scripted model as a local one and records what it trains on."""
    recorder = Trained(scripted)
    monkeypatch.setattr(lora, "local_model", lambda backend, spec, name: backend)
    monkeypatch.setattr(lora, "train_adapter_for", recorder)
    return recorder


def task_file(tmp_path: Path, candidates: str, data: str = "") -> Path:
    folder = tmp_path / "task"
    write_jsonl(folder / "data" / "train.jsonl", SENTIMENT_TRAIN)
    write_jsonl(folder / "data" / "test.jsonl", SENTIMENT_TEST)
    text = TASK_YAML.replace("  test: data/test.jsonl\n", "  test: data/test.jsonl\n" + data)
    (folder / "task.yaml").write_text(text + "candidates:\n" + candidates, encoding="utf-8")
    return folder / "task.yaml"


def train_examples() -> list[Example]:
    rows = enumerate(HUMAN.items())
    return [Example(f"train-{i}", x, y, f"train.jsonl:{i + 1}") for i, (x, y) in rows]


DISTILLED = "  - {name: distilled, strategy: lora, teacher: 'teacher:x', min_confidence: 0.5}\n"


# ---- the filtering --------------------------------------------------------------------------


def test_invalid_and_low_confidence_labels_are_dropped_and_the_rest_carry_the_teacher_label(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task = load_task(task_file(tmp_path, DISTILLED))
    (spec,) = task.candidates
    kept, record = labelling.teacher_labels(task, spec, train_examples(), scripted, "distilled")
    by_input = {e.input: e for e in kept}
    assert "it is a blender" not in by_input  # 'maybe' is not a label
    assert {"awful smell out of the box", "comes in a box"}.isdisjoint(by_input)  # 0.4 < 0.5
    assert len(kept) == len(HUMAN) - 3
    for example in kept:
        assert example.output == FLIP[HUMAN[example.input]]  # the teacher's, never the human's
        assert example.id == f"train-{list(HUMAN).index(example.input)}"
    assert record["asked"] == 12 and record["kept"] == 9
    assert record["dropped_invalid"] == 1 and record["dropped_low_confidence"] == 2
    assert record["asked"] == (
        record["kept"] + record["dropped_invalid"] + record["dropped_low_confidence"]
    )
    reasons = {d["id"]: d["reason"] for d in record["dropped"]}
    assert "not one of the labels" in reasons["train-8"] and reasons["train-10"].startswith(
        "confidence 0.4"
    )
    # Kept labels agree with the human ones only where flipping changes nothing (neutral).
    neutral = sum(HUMAN[e.input] == "neutral" for e in kept)
    assert record["agreement_with_human"]["n"] == 9
    assert record["agreement_with_human"]["value"] == pytest.approx(neutral / 9, abs=1e-4)
    assert record["teacher"] == "teacher:x" and record["requests"] == 12 and record["calls"] == 12
    assert record["input_tokens"] > 0 and record["output_tokens"] == 24


def test_without_min_confidence_every_valid_label_is_kept(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task = load_task(task_file(tmp_path, "  - {strategy: lora, teacher: 'teacher:x'}\n"))
    kept, record = labelling.teacher_labels(
        task, task.candidates[0], train_examples(), scripted, "lora"
    )
    assert len(kept) == 11 and record["dropped_low_confidence"] == 0


def test_invalid_json_answers_are_dropped(tmp_path: Path, scripted: ScriptedBackend) -> None:
    folder = tmp_path / "json-task"
    rows = [(f"order {i}", json.dumps({"qty": i})) for i in range(6)]
    write_jsonl(folder / "train.jsonl", rows)
    (folder / "task.yaml").write_text(
        TASK_YAML.replace(
            "{type: label, labels: [positive, negative, neutral]}",
            "{type: json, schema: {type: object, required: [qty],"
            " properties: {qty: {type: integer}}}}",
        )
        .replace("  train: data/train.jsonl\n  test: data/test.jsonl\n", "  train: train.jsonl\n")
        .replace("{metric: accuracy, min: 0.6}", "{metric: field_f1, min: 0.6}")
        + "candidates:\n"
        + "  - {strategy: lora, teacher: 'scripted:test', teacher_prompt: zero-shot}\n",
        encoding="utf-8",
    )
    answers = {"order 0": '{"qty": 0}', "order 1": "not json", "order 2": '{"qty": "two"}'}
    fenced = '```json\n{"qty": 9}\n```'
    scripted.rule = lambda messages: answers.get(messages[-1]["content"], fenced)
    task = load_task(folder / "task.yaml")
    train = [Example(f"t{i}", x, y, "train.jsonl") for i, (x, y) in enumerate(rows)]
    kept, record = labelling.teacher_labels(task, task.candidates[0], train, scripted, "lora")
    assert record["dropped_invalid"] == 2 and record["kept"] == 4
    assert {e.input: e.output for e in kept} == {
        "order 0": '{"qty": 0}',
        "order 3": '{"qty": 9}',  # unfenced and canonical, as a training file's output is
        "order 4": '{"qty": 9}',
        "order 5": '{"qty": 9}',
    }
    assert record["human_labels"] == 0 and record["k"] == 0  # zero-shot: no demos


def test_too_few_kept_labels_is_an_error_naming_the_candidate(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    teacher.answers = {x: ("maybe", 0.9) for x in HUMAN}
    task = load_task(task_file(tmp_path, DISTILLED))
    with pytest.raises(TunewiseError, match=r"'distilled'.*0 usable labels of 12"):
        labelling.teacher_labels(task, task.candidates[0], train_examples(), scripted, "distilled")


# ---- what the teacher sees ------------------------------------------------------------------


def test_teacher_demos_are_human_labelled_and_never_the_input_being_labelled(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task = load_task(task_file(tmp_path, DISTILLED))
    _, record = labelling.teacher_labels(
        task, task.candidates[0], train_examples(), scripted, "distilled"
    )
    assert len(teacher.calls) == 12
    used: set[str] = set()
    for messages in teacher.calls:
        asked = messages[-1]["content"]
        shown = [m["content"] for m in messages[1:-1]]
        assert asked not in shown  # the labelled input is never its own demo
        assert len(shown) == 2 * 4  # teacher_k demos, each a user and an assistant turn
        for question, answer in zip(shown[::2], shown[1::2], strict=True):
            assert HUMAN[question] == answer  # demos carry the human labels
            used.add(question)
    assert len(used) == 5  # four demos, plus the spare for the inputs that are demos
    assert record["human_labels"] == 5 and len(record["demo_ids"]) == 5


def test_the_teacher_is_asked_through_the_response_cache(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task = load_task(task_file(tmp_path, DISTILLED))
    spec, train = task.candidates[0], train_examples()
    first = labelling.teacher_labels(task, spec, train, scripted, "distilled")
    again = labelling.teacher_labels(task, spec, train, scripted, "distilled")
    assert len(teacher.calls) == 12
    assert again[0] == first[0] and again[1]["calls"] == 0 and again[1]["requests"] == 12


# ---- what the student sees ------------------------------------------------------------------


def test_the_student_trains_on_teacher_labels_only(
    tmp_path: Path, teacher: Teacher, trained: Trained
) -> None:
    task = load_task(task_file(tmp_path, DISTILLED))
    predictor = lora.prepare(task, task.candidates[0], train_examples(), trained.student, "d")
    assert len(trained.examples) == 9
    for example in trained.examples:
        assert example.output == FLIP[HUMAN[example.input]]
    flipped = [e for e in trained.examples if HUMAN[e.input] != "neutral"]
    assert flipped and all(e.output != HUMAN[e.input] for e in flipped)
    assert trained.recipe == {"prompt": "short", "teacher": "teacher:x"}
    assert predictor.setup.distillation is not None
    assert predictor.setup.distillation.record()["kept"] == 9
    assert predictor.params["teacher"] == "teacher:x"
    teacher_seconds = predictor.setup.distillation.seconds
    assert predictor.setup.seconds == pytest.approx(1.5 + teacher_seconds)


def test_without_a_teacher_the_student_trains_on_human_labels(
    tmp_path: Path, trained: Trained
) -> None:
    task = load_task(task_file(tmp_path, "  - {strategy: lora}\n"))
    predictor = lora.prepare(task, task.candidates[0], train_examples(), trained.student, "lora")
    assert [(e.input, e.output) for e in trained.examples] == list(HUMAN.items())
    assert trained.recipe == {"prompt": "short"}  # human-trained adapters keep their cache key
    assert predictor.setup.distillation is None
    assert "distillation" not in predictor.setup.record()


def test_max_train_examples_bounds_what_the_teacher_labels(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    spec_line = "  - {strategy: lora, teacher: 'teacher:x', max_train_examples: 10}\n"
    task = load_task(task_file(tmp_path, spec_line))
    _, record = labelling.teacher_labels(task, task.candidates[0], train_examples(), scripted, "l")
    assert record["asked"] == 10 and len(teacher.calls) == 10


# ---- data.unlabeled -------------------------------------------------------------------------

UNLABELED = [
    {"id": "u1", "input": "love it so much"},
    {"id": "u2", "prompt": "awful, just awful"},
    {"id": "u3", "input": "it came in a box"},
    {"id": "u4", "input": "great colour", "output": "positive"},
    {"id": "u5", "messages": [{"role": "user", "content": "a second one"}]},
]


def write_unlabeled(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_data_unlabeled_is_labelled_instead_of_the_training_inputs(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task_path = task_file(tmp_path, DISTILLED, data="  unlabeled: data/unlabeled.jsonl\n")
    write_unlabeled(task_path.parent / "data" / "unlabeled.jsonl", UNLABELED)
    teacher.answers = {"great colour": ("negative", 0.9), "it came in a box": ("neutral", 0.3)}
    task = load_task(task_path)
    kept, record = labelling.teacher_labels(
        task, task.candidates[0], train_examples(), scripted, "distilled"
    )
    asked = [messages[-1]["content"] for messages in teacher.calls]
    assert sorted(asked) == sorted(
        ["love it so much", "awful, just awful", "it came in a box", "great colour", "a second one"]
    )
    assert [e.id for e in kept] == ["u1", "u2", "u4", "u5"]  # u3 is under min_confidence
    assert record["inputs"] == "data.unlabeled (unlabeled.jsonl)"
    # Only u4 had a human answer; the teacher disagreed with it.
    assert record["agreement_with_human"] == {"value": 0.0, "ci_low": 0.0, "ci_high": 0.0, "n": 1}


def test_a_bad_unlabeled_line_names_the_file_and_line(
    tmp_path: Path, teacher: Teacher, scripted: ScriptedBackend
) -> None:
    task_path = task_file(tmp_path, DISTILLED, data="  unlabeled: data/unlabeled.jsonl\n")
    path = write_unlabeled(
        task_path.parent / "data" / "unlabeled.jsonl", [UNLABELED[0], {"text": "no input key"}]
    )
    task = load_task(task_path)
    with pytest.raises(DataError, match=r"unlabeled\.jsonl:2: no input") as caught:
        labelling.teacher_labels(task, task.candidates[0], train_examples(), scripted, "d")
    assert caught.value.path == path and caught.value.line == 2
    write_unlabeled(path, [UNLABELED[0], "{not json"])
    with pytest.raises(DataError, match=r"unlabeled\.jsonl:2: malformed JSON"):
        labelling.teacher_labels(task, task.candidates[0], train_examples(), scripted, "d")
    write_unlabeled(path, [{"input": "x", "output": "maybe"}])
    with pytest.raises(DataError, match=r"unlabeled\.jsonl:1: field 'output': label 'maybe'"):
        labelling.teacher_labels(task, task.candidates[0], train_examples(), scripted, "d")


# ---- the task file --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("candidates", "data", "message"),
    [
        ("  - {strategy: lora, min_confidence: 0.5}\n", "", "set teacher"),
        ("  - {strategy: lora, teacher_prompt: zero-shot}\n", "", "set teacher"),
        ("  - {strategy: lora}\n", "  unlabeled: u.jsonl\n", "give a lora or hybrid"),
        ("  - {strategy: few-shot, teacher: 'teacher:x'}\n", "", "teacher"),
    ],
)
def test_distillation_settings_are_checked(
    tmp_path: Path, candidates: str, data: str, message: str
) -> None:
    with pytest.raises(TaskError, match=message):
        load_task(task_file(tmp_path, candidates, data))


def test_min_confidence_is_for_label_tasks(tmp_path: Path) -> None:
    path = task_file(tmp_path, "  - {strategy: lora, teacher: x, min_confidence: 0.5}\n")
    path.write_text(
        path.read_text()
        .replace("{type: label, labels: [positive, negative, neutral]}", "{type: text}")
        .replace("{metric: accuracy, min: 0.6}", "{metric: exact_match, min: 0.6}")
    )
    with pytest.raises(TaskError, match="min_confidence applies to label tasks"):
        load_task(path)


# ---- cost ------------------------------------------------------------------------------------


def cost_inputs(**teacher: Any) -> CostInputs:
    return CostInputs("d", "lora", "base+lora:abc", 10, 1, 0.01, training_seconds=60, **teacher)


def test_an_api_teachers_tokens_are_priced_at_the_teachers_price() -> None:
    prices = PriceList(
        compute_usd_per_hour=3.6,
        tokens={"openai:t": TokenPrice(1.0, 4.0), "base": TokenPrice(100.0, 100.0)},
    )
    inputs = cost_inputs(
        teacher_model="openai:t", teacher_tokens_input=1e6, teacher_tokens_output=5e5
    )
    cost = setup_cost(inputs, prices)
    assert cost.usd == pytest.approx(0.06 + 1.0 + 2.0)
    assert "teacher openai:t" in cost.detail and cost.basis == "compute+tokens"


def test_an_unpriced_api_teacher_is_named_and_a_local_teacher_is_compute() -> None:
    unpriced = setup_cost(
        cost_inputs(teacher_model="openai:t", teacher_tokens_input=10, teacher_tokens_output=5),
        PriceList(compute_usd_per_hour=3.6),
    )
    assert "tokens of the teacher openai:t" in unpriced.detail
    local = cost_inputs(teacher_model="embedded", teacher_seconds=40)
    assert local.setup_seconds == 100
    assert setup_cost(local, PriceList(compute_usd_per_hour=3.6)).usd == pytest.approx(0.1)


# ---- a whole run ----------------------------------------------------------------------------

RUN_CANDIDATES = (
    "  - {name: distilled, strategy: lora, teacher: 'teacher:x', min_confidence: 0.5}\n"
    "  - {name: human, strategy: lora}\n"
    "  - {name: teacher-few-shot, strategy: few-shot, model: 'teacher:x', k: 3, redraws: 1}\n"
)
PRICED = "prices:\n  tokens:\n    'teacher:x': {input_per_million: 2.0, output_per_million: 8.0}\n"


def test_a_run_compares_student_human_and_teacher_in_results_and_report(
    tmp_path: Path, teacher: Teacher, trained: Trained
) -> None:
    teacher.remote = True
    path = task_file(tmp_path, RUN_CANDIDATES)
    path.write_text(path.read_text() + PRICED, encoding="utf-8")
    folder = write_run(measure(path), tmp_path / "runs")
    results, _ = read_run(folder)
    jsonschema.validate(results, load_schema("results"))
    entries = {c["name"]: c for c in results["candidates"]}
    record = entries["distilled"]["setup"]["distillation"]
    assert record["kept"] == 9 and record["remote"] is True
    assert "distillation" not in entries["human"]["setup"]
    setup = entries["distilled"]["cost"]["setup"]
    tokens_usd = (record["input_tokens"] * 2.0 + record["output_tokens"] * 8.0) / 1e6
    assert setup["usd"] == pytest.approx(tokens_usd, rel=1e-3)
    assert "teacher teacher:x" in setup["detail"]
    assert "5 labelled examples" in setup["detail"]  # the teacher's demos, not its 9 labels
    md = (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "## Distillation" in md and "<h2>Distillation</h2>" in html
    assert "| distilled | student, teacher labels |" in md
    assert "| human | student, human labels |" in md
    assert "| teacher-few-shot | teacher, prompting |" in md
    assert "| 9 / 12 |" in md
    assert "kept 9, dropped 1 invalid and 2 under min_confidence 0.5" in html


def test_results_schema_documents_the_distillation_record() -> None:
    setup = load_schema("results")["$defs"]["candidate"]["properties"]["setup"]["properties"]
    required = setup["distillation"]["required"]
    assert {"asked", "kept", "dropped_invalid", "dropped_low_confidence"} <= set(required)


def test_lora_candidate_defaults_leave_distillation_off() -> None:
    spec = LoraCandidate(strategy="lora")
    assert spec.teacher is None and spec.teacher_prompt == "few-shot" and spec.min_confidence == 0


def test_unlabeled_inputs_that_are_test_inputs_count_as_leaked(
    tmp_path: Path, scripted: ScriptedBackend
) -> None:
    """A student trained on teacher labels of test inputs has seen the test: load_data reads
    data.unlabeled before any model loads and counts the overlap as leakage."""
    from tunewise.run import RunOptions, load_data

    task_path = task_file(tmp_path, DISTILLED, data="  unlabeled: data/unlabeled.jsonl\n")
    rows = [UNLABELED[0], {"id": "u9", "input": SENTIMENT_TEST[2][0]}]
    write_unlabeled(task_path.parent / "data" / "unlabeled.jsonl", rows)
    dataset, _ = load_data(load_task(task_path), RunOptions())
    assert dataset.leaked == ["test-2"]
    with pytest.raises(DataError, match=r"1 test inputs also appear in train or data\.unlabeled"):
        load_data(load_task(task_path), RunOptions(strict=True))
    write_unlabeled(task_path.parent / "data" / "unlabeled.jsonl", ["{not json"])
    with pytest.raises(DataError, match=r"unlabeled\.jsonl:1: malformed JSON"):
        load_data(load_task(task_path), RunOptions())
