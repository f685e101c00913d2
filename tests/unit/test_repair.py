"""The validation and repair loop: invalid answers re-asked with the reason, costs counted,
cached like first answers; wired into runs, results.json and the report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import jsonschema
import pytest
from conftest import ScriptedBackend, write_jsonl
from fastapi.testclient import TestClient

from tunewise.core.setup import Setup
from tunewise.evaluation import validate
from tunewise.inference.cache import ResponseCache
from tunewise.inference.predict import predict
from tunewise.inference.predictor import PromptPredictor
from tunewise.inference.prompts import system_prompt
from tunewise.inference.repair import repair, repair_message
from tunewise.inference.serve import create_app
from tunewise.models.backend import Message
from tunewise.records.rebuild import load_candidate
from tunewise.records.results import load_schema, write_run
from tunewise.run import RunOptions, run_task
from tunewise.task.config import Contract, TextFormat
from tunewise.task.data import Example
from tunewise.task.loading import load_task

JSON_FORMAT = {
    "type": "json",
    "json_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


def contract() -> Contract:
    return Contract.model_validate(
        {
            "objective": "Extract the city.",
            "audience": "Mailroom staff.",
            "source_material": "The address.",
            "output_format": JSON_FORMAT,
        }
    )


def fixes_after(rounds: int):  # type: ignore[no-untyped-def]
    """A model that answers prose first and valid JSON only after `rounds` repair requests."""

    def rule(messages: Sequence[Message]) -> str:
        asked = sum("not valid" in m["content"] for m in messages if m["role"] == "user")
        return '{"city": "Boston"}' if asked >= rounds else "The city is Boston."

    return rule


def items(n: int) -> list[Example]:
    return [Example(f"t{i}", f"1 Main St, Boston {i}", '{"city": "Boston"}', "t") for i in range(n)]


def run_repair(backend: ScriptedBackend, path: Path, max_repairs: int):  # type: ignore[no-untyped-def]
    c = contract()
    predictor = PromptPredictor("zero-shot", "zero-shot", backend, c, lambda _: ())
    cache = ResponseCache(path)
    try:
        first = predict(predictor, items(3), c.output_format, cache, max_new_tokens=16)
        return first, *repair(
            predictor,
            items(3),
            first,
            c.output_format,
            cache,
            max_new_tokens=16,
            max_repairs=max_repairs,
        )
    finally:
        cache.close()


def test_repair_re_asks_with_the_validators_reason_and_counts_every_attempt(
    tmp_path: Path,
) -> None:
    backend = ScriptedBackend(fixes_after(2))
    first, repaired, record = run_repair(backend, tmp_path / "cache.sqlite", max_repairs=2)
    assert all(validate(contract().output_format, p.output) for p in first)
    assert [p.output for p in repaired] == ['{"city": "Boston"}'] * 3
    assert record.invalid_before == 3 and record.repaired == 3 and record.requests == 6
    # The second repair request carries the whole conversation: both failed answers and reasons.
    last = backend.calls[-1]
    assert [m["role"] for m in last][-4:] == ["assistant", "user", "assistant", "user"]
    assert last[-1]["content"].startswith("That answer is not valid: not valid JSON")
    for before, after in zip(first, repaired, strict=True):
        assert after.repairs == 2 and after.first_output == before.output
        assert after.input_tokens > 3 * before.input_tokens  # every attempt's prompt is paid
        assert after.output_tokens == 3 * before.output_tokens
        assert after.latency_ms > before.latency_ms
    pairs = zip(first, repaired, strict=True)
    paid = sum(after.input_tokens - before.input_tokens for before, after in pairs)
    assert record.input_tokens == paid


def test_repair_stops_at_max_repairs_and_reports_what_stayed_invalid(tmp_path: Path) -> None:
    backend = ScriptedBackend(fixes_after(5))
    _, repaired, record = run_repair(backend, tmp_path / "cache.sqlite", max_repairs=1)
    assert record.requests == 3 and record.repaired == 0
    assert record.to_dict()["still_invalid"] == 3
    assert all(p.repairs == 1 for p in repaired)


def test_valid_answers_are_never_re_asked(tmp_path: Path) -> None:
    backend = ScriptedBackend(fixes_after(0))
    first, repaired, record = run_repair(backend, tmp_path / "cache.sqlite", max_repairs=2)
    assert repaired == first and record.requests == 0 and len(backend.calls) == 3


def test_repairs_come_from_the_cache_on_a_rerun(tmp_path: Path) -> None:
    run_repair(ScriptedBackend(fixes_after(1)), tmp_path / "cache.sqlite", max_repairs=2)
    again = ScriptedBackend(fixes_after(1))
    _, repaired, _ = run_repair(again, tmp_path / "cache.sqlite", max_repairs=2)
    assert again.calls == [] and all(p.cached for p in repaired)


def test_repair_message_names_the_reason_and_the_format() -> None:
    message = repair_message(TextFormat(type="text", pattern=r"[A-Z]{2}"), "too long")
    assert "too long" in message and "[A-Z]{2}" in message


def test_repair_message_refers_to_the_json_schema_without_repeating_it() -> None:
    task_contract = contract()
    message = repair_message(task_contract.output_format, "'city' is a required property")
    assert "'city' is a required property" in message and "JSON Schema given above" in message
    assert '"properties"' not in message
    assert '"properties"' in system_prompt(task_contract)  # where "above" points


def test_text_pattern_is_enforced_except_for_the_abstention() -> None:
    output_format = TextFormat(type="text", pattern=r"[A-Z]{3}", abstention="I don't know")
    assert validate(output_format, " USD\n") is None
    assert validate(output_format, "usd") == "does not match the pattern [A-Z]{3}"
    assert validate(output_format, "I don't know") is None


TASK = """\
name: tiny-json
contract:
  objective: Extract the city.
  audience: Mailroom staff.
  source_material: The address.
  output_format:
    type: json
    json_schema: {type: object, properties: {city: {type: string}}, required: [city]}
data: {train: train.jsonl, test: test.jsonl}
model: scripted:test
max_repairs: 2
candidates:
  - {strategy: zero-shot}
  - {strategy: zero-shot, name: no-repair, max_repairs: 0}
"""


@pytest.fixture
def json_run(tmp_path: Path, scripted: ScriptedBackend) -> Path:
    scripted.rule = fixes_after(1)
    rows = [(f"{i} Main St, Boston", '{"city": "Boston"}') for i in range(8)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:5])
    (tmp_path / "task.yaml").write_text(TASK, encoding="utf-8")
    return write_run(run_task(load_task(tmp_path / "task.yaml"), RunOptions()), tmp_path / "runs")


def test_a_run_reports_validity_before_and_after_repair_and_counts_repair_tokens(
    json_run: Path,
) -> None:
    folder = json_run
    results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(load_schema("results")).validate(results)
    repaired, plain = results["candidates"]
    assert repaired["metrics"]["format_validity_before_repair"]["value"] == 0.0
    assert repaired["metrics"]["format_validity"]["value"] == 1.0
    assert repaired["repair"]["repaired"] == 5 and repaired["repair"]["requests"] == 5
    assert plain["repair"] is None and plain["metrics"]["format_validity"]["value"] == 0.0
    # Usage includes the repair requests: twice the answers, more than twice the prompt.
    assert (
        repaired["usage"]["output_tokens_per_request"]
        == 2 * plain["usage"]["output_tokens_per_request"]
    )
    assert (
        repaired["usage"]["input_tokens_per_request"]
        > 2 * plain["usage"]["input_tokens_per_request"]
    )
    lines = [json.loads(line) for line in (folder / "predictions.jsonl").open(encoding="utf-8")]
    for line in lines:
        jsonschema.Draft202012Validator(load_schema("prediction")).validate(line)
    first = next(line for line in lines if line["candidate"] == repaired["name"])
    assert first["repairs"] == 1 and first["first_output"] == "The city is Boston."
    report = (folder / "report.md").read_text(encoding="utf-8")
    assert "## Validation and repair" in report and "validity before repair" in report


class StageLog:
    """A Progress that records each stage's name, total and steps done."""

    def __init__(self) -> None:
        self.stages: dict[str, list[int]] = {}

    def stage(self, description: str, total: int):  # type: ignore[no-untyped-def]
        record = self.stages[description] = [total, 0]

        def advance(n: int) -> None:
            record[1] += n

        return advance


def test_repair_requests_show_as_their_own_progress_stage(
    tmp_path: Path, scripted: ScriptedBackend
) -> None:
    scripted.rule = fixes_after(1)
    rows = [(f"{i} Main St, Boston", '{"city": "Boston"}') for i in range(8)]
    write_jsonl(tmp_path / "train.jsonl", rows)
    write_jsonl(tmp_path / "test.jsonl", rows[:5])
    (tmp_path / "task.yaml").write_text(TASK, encoding="utf-8")
    log = StageLog()
    run_task(load_task(tmp_path / "task.yaml"), RunOptions(), log)
    # 5 invalid answers, up to 2 rounds each; one round fixed them all, and the bar ends full
    # (the 5 requests the second round spared count as done, not as still to come).
    assert log.stages["zero-shot"] == [5, 5]
    assert log.stages["zero-shot repairs"] == [10, 10]
    assert "no-repair repairs" not in log.stages  # max_repairs: 0


def test_serve_repairs_as_the_run_measured(json_run: Path) -> None:
    request = {"messages": [{"role": "user", "content": "9 Elm St, Boston"}]}
    repaired = TestClient(create_app(load_candidate(json_run, "zero-shot")))
    body = repaired.post("/v1/chat/completions", json={**request, "model": "zero-shot"}).json()
    assert body["choices"][0]["message"]["content"] == '{"city": "Boston"}'
    assert body["tunewise"]["repairs"] == 1 and body["tunewise"]["invalid_reason"] is None
    plain = TestClient(create_app(load_candidate(json_run, "no-repair")))
    body = plain.post("/v1/chat/completions", json={**request, "model": "no-repair"}).json()
    assert body["tunewise"]["repairs"] == 0
    assert body["tunewise"]["invalid_reason"].startswith("not valid JSON")


def test_an_empty_ranking_counts_as_a_retrieval_miss(tmp_path: Path) -> None:
    """A retrieving candidate that found nothing for one question still gets recall and MRR,
    with that question as a miss."""
    from dataclasses import dataclass, field

    from tunewise.core.progress import SilentProgress
    from tunewise.inference.predictor import Request
    from tunewise.measuring.candidate import _evaluate
    from tunewise.task.config import Task

    @dataclass
    class Retrieving:
        name: str = "rag"
        strategy: str = "rag"
        backend: ScriptedBackend = field(default_factory=lambda: ScriptedBackend(lambda m: "x"))
        params: dict = field(default_factory=dict)  # type: ignore[type-arg]
        setup: Setup = field(default_factory=Setup)

        def request(self, example: Example) -> Request:
            found = () if example.id == "t1" else ("d0", "d1")
            return Request([{"role": "user", "content": example.input}], retrieved=found)

    task = Task.model_validate(
        {
            "name": "t",
            "contract": {**contract().model_dump(by_alias=True), "output_format": {"type": "text"}},
            "data": {"train": "x.jsonl"},
            "max_new_tokens": 8,
        }
    )
    asked = [Example(f"t{i}", f"q{i}", "x", "t", {"doc_id": "d0"}) for i in range(4)]
    cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        _, metrics, _, _ = _evaluate(task, Retrieving(), asked, cache, SilentProgress(), "rag")
    finally:
        cache.close()
    assert metrics["recall@1"].value == 0.75 and metrics["mrr"].value == 0.75
