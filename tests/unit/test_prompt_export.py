"""tunewise export for prompting candidates: the measured prompt as OpenAI messages, a promptfoo
prompt and config, or text; and a zero-shot candidate with prompt_file: that measures an
exported prompt again, with exactly its messages."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import TASK_YAML, TEXT_TASK, ScriptedBackend, measure, read_run, write_jsonl
from typer.testing import CliRunner

from tunewise.cli.main import app
from tunewise.errors import TunewiseError
from tunewise.inference.prompts import system_prompt
from tunewise.records.prompt_export import (
    MeasuredPrompt,
    check_format,
    export_prompt,
    promptfoo_config,
    promptfoo_prompt,
)
from tunewise.records.results import write_run
from tunewise.strategies.zero_shot.prompt_file import parse_messages
from tunewise.task.loading import load_task

FEW_SHOT = "candidates:\n  - {strategy: few-shot, k: 4}\n"


pytestmark = pytest.mark.usefixtures("contained_environment")


def invoke(*args: str | Path) -> Any:
    return CliRunner().invoke(app, [str(a) for a in args])


def task_with(tiny_task: Path, candidates: str, name: str = "task.yaml") -> Path:
    path = tiny_task.parent / name
    path.write_text(TASK_YAML + candidates, encoding="utf-8")
    return path


@pytest.fixture
def few_shot_run(tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path) -> Path:
    return write_run(measure(task_with(tiny_task, FEW_SHOT)), tmp_path / "runs")


def test_the_exported_prompt_is_measured_again_with_exactly_its_messages(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One demo draw: the consistency measure's re-draws would be requests of their own.
    one_draw = "candidates:\n  - {strategy: few-shot, k: 4, redraws: 1}\n"
    first = write_run(measure(task_with(tiny_task, one_draw)), tmp_path / "runs")
    sent_first = [list(call) for call in scripted.calls]
    exported = tiny_task.parent / "prompts" / "few-shot.json"
    result = invoke(
        "export", first, "--candidate", "few-shot", "--format", "openai-messages", "--out", exported
    )
    assert result.exit_code == 0, result.output
    # A fresh response cache, so the second run's requests reach the model.
    monkeypatch.setenv("TUNEWISE_HOME", str(tmp_path / "fresh-home"))
    scripted.calls.clear()
    again = task_with(
        tiny_task,
        "candidates:\n  - {strategy: zero-shot, name: exported, "
        "prompt_file: prompts/few-shot.json}\n",
        "again.yaml",
    )
    second = write_run(measure(again), tmp_path / "runs")
    assert scripted.calls == sent_first
    _, before = read_run(first)
    document, after = read_run(second)
    test_outputs = lambda lines: [(p["example_id"], p["output"]) for p in lines]  # noqa: E731
    assert test_outputs(after) == test_outputs(before)
    params = document["candidates"][0]["params"]
    assert params["prompt_file"] == str(exported.resolve())
    assert len(params["prompt_sha256"]) == 64


def test_openai_messages_hold_the_measured_prompt_and_where_it_comes_from(
    few_shot_run: Path, tiny_task: Path
) -> None:
    path = export_prompt(few_shot_run, "few-shot", "openai-messages", few_shot_run / "p.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    results, lines = read_run(few_shot_run)
    messages = document["messages"]
    contract = load_task(tiny_task).contract
    assert messages[0] == {"role": "system", "content": system_prompt(contract)}
    assert [m["role"] for m in messages[1:]] == ["user", "assistant"] * 4 + ["user"]
    assert messages[-1] == {"role": "user", "content": "{{input}}"}
    assert document["model"] == "scripted:test"
    header = document["tunewise"]
    accuracy = results["candidates"][0]["metrics"]["accuracy"]
    assert header["metric"] == {"name": "accuracy", **accuracy}
    assert header["run_id"] == results["run_id"] and header["candidate"] == "few-shot"
    assert header["strategy"] == "few-shot" and header["model"] == "scripted:test"
    assert header["data_hash"] == results["data"]["hash"] and header["seed"] == results["seed"]
    assert header["demo_ids"] == lines[0]["demo_ids"]


def test_text_is_the_prompt_under_a_comment_header(few_shot_run: Path) -> None:
    result = invoke("export", few_shot_run, "--candidate", "few-shot", "--format", "text")
    assert result.exit_code == 0, result.output
    text = (few_shot_run / "exports" / "few-shot-text.txt").read_text(encoding="utf-8")
    results, _ = read_run(few_shot_run)
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert results["run_id"] in header[0] and "accuracy" in header[1]
    assert "tunewise scored the labels" in header[-1]
    assert "System prompt:\nClassify the sentiment" in text
    assert "Example 4 input:" in text and "Example 4 output:" in text
    assert text.rstrip().endswith("{{input}}")


def test_promptfoo_writes_a_prompt_file_and_a_config_that_names_it(few_shot_run: Path) -> None:
    out = few_shot_run / "pf"
    result = invoke(
        "export", few_shot_run, "--candidate", "few-shot", "--format", "promptfoo", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["prompt.json", "promptfooconfig.yaml"]
    chat = json.loads((out / "prompt.json").read_text(encoding="utf-8"))
    assert chat[-1] == {"role": "user", "content": "{{input}}"} and len(chat) == 10
    text = (out / "promptfooconfig.yaml").read_text(encoding="utf-8")
    results, _ = read_run(few_shot_run)
    assert text.startswith(
        f"# tunewise export of candidate 'few-shot' (few-shot) from run {results['run_id']}"
    )
    assert "# measured: accuracy " in text and "95% CI" in text
    config = yaml.safe_load(text)
    assert config["prompts"] == ["file://prompt.json"]
    assert config["providers"] == []  # a local model: a commented placeholder to fill in
    assert "  # - id: openai:chat:MODEL" in text


def measured(messages: list[dict[str, str]], base_url: str | None = None) -> MeasuredPrompt:
    header = {
        "run_id": "r1", "task": "t", "candidate": "c", "strategy": "few-shot", "model": "m",
        "metric": {"name": "accuracy", "value": 0.9, "ci_low": 0.8, "ci_high": 0.95, "n": 50},
        "data_hash": "abc", "seed": 13, "max_new_tokens": 32,
    }  # fmt: skip
    return MeasuredPrompt(messages, "gpt-4o-mini", base_url, "OPENAI_API_KEY", False, header)  # type: ignore[arg-type]


def test_promptfoo_names_an_openai_compatible_endpoint_by_its_key_variable() -> None:
    prompt = measured([{"role": "user", "content": "{{input}}"}], "https://api.openai.com/v1")
    config = yaml.safe_load(promptfoo_config(prompt, "prompt.json"))
    [provider] = config["providers"]
    assert provider["id"] == "openai:chat:gpt-4o-mini"
    assert provider["config"] == {
        "apiBaseUrl": "https://api.openai.com/v1",
        "temperature": 0,
        "max_tokens": 32,
        "apiKeyEnvar": "OPENAI_API_KEY",
    }


def test_promptfoo_keeps_template_like_text_literal() -> None:
    prompt = measured(
        [
            {"role": "system", "content": "Answer in {{braces}} {% if %}"},
            {"role": "user", "content": "Text {# x #}: {{input}}"},
        ]
    )
    system, user = json.loads(promptfoo_prompt(prompt))
    assert system["content"] == "{% raw %}Answer in {{braces}} {% if %}{% endraw %}"
    assert user["content"] == "{% raw %}Text {# x #}: {% endraw %}{{input}}"


def test_similar_demos_are_refused_with_what_to_do_instead(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    task = task_with(tiny_task, "candidates:\n  - {strategy: few-shot, k: 2, selection: similar}\n")
    run_dir = write_run(measure(task), tmp_path / "runs")
    result = invoke("export", run_dir, "--candidate", "few-shot", "--format", "text")
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert "picks its demos per input" in message and "tunewise serve" in message
    assert not (run_dir / "exports").exists()


def test_a_prompting_candidate_is_told_its_formats(few_shot_run: Path) -> None:
    result = invoke("export", few_shot_run, "--candidate", "few-shot", "--format", "adapter")
    assert result.exit_code == 2
    assert "openai-messages | promptfoo | text" in " ".join(result.output.split())


@pytest.mark.parametrize(
    ("entry", "fmt", "expected"),
    [
        (
            {"strategy": "lora", "family": "fine-tuning", "setup": {"adapter": "adapters/x"}},
            "openai-messages",
            "is fine-tuned (lora): export it with --format adapter | merged | openai-jsonl",
        ),
        ({"strategy": "rag", "family": "retrieval", "setup": {}}, "text", "retrieved per input"),
        (
            {"strategy": "lora", "status": "skipped", "skipped_reason": "no GPU"},
            "adapter",
            "skipped in this run (no GPU)",
        ),
    ],
)
def test_formats_a_candidate_cannot_have_are_one_line_errors(
    entry: dict[str, Any], fmt: str, expected: str
) -> None:
    with pytest.raises(TunewiseError, match=re.escape(expected)):
        check_format({"name": "x", "status": "measured", **entry}, fmt)


def test_an_existing_out_path_is_left_alone(few_shot_run: Path) -> None:
    taken = few_shot_run / "taken.json"
    taken.write_text("mine", encoding="utf-8")
    with pytest.raises(TunewiseError, match="already exists"):
        export_prompt(few_shot_run, "few-shot", "openai-messages", taken)
    assert taken.read_text(encoding="utf-8") == "mine"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"not json", "not valid JSON"),
        (b'{"model": "m"}', "expected a non-empty list of messages"),
        (b'[{"role": "tool", "content": "x"}]', "messages.0: expected"),
        (b'[{"role": "user", "content": "no placeholder"}]', "hold {{input}}"),
    ],
)
def test_a_bad_prompt_file_names_the_problem(content: bytes, expected: str) -> None:
    with pytest.raises(TunewiseError, match=re.escape(expected)):
        parse_messages(content, Path("p.json"))


def test_a_missing_prompt_file_names_the_candidate(
    tiny_task: Path, scripted: ScriptedBackend
) -> None:
    task = task_with(tiny_task, "candidates:\n  - {strategy: zero-shot, prompt_file: gone.json}\n")
    with pytest.raises(TunewiseError, match=r"candidate 'zero-shot': prompt_file .*gone\.json"):
        measure(task)


def test_optimized_prompt_exports_its_winning_instruction_and_demos(
    tiny_task: Path, scripted: ScriptedBackend, tmp_path: Path
) -> None:
    magic = "Use the MAGIC cue words to pick the label."
    scripted.sample = lambda messages, seed: magic
    rule = scripted.rule
    scripted.rule = lambda m: rule(m) if "MAGIC" in m[0]["content"] else "neutral"
    task = task_with(
        tiny_task,
        "candidates:\n  - {strategy: optimized-prompt, k: 2, instructions: 1, "
        "validation_examples: 4}\n",
    )
    run_dir = write_run(measure(task), tmp_path / "runs")
    path = export_prompt(run_dir, "optimized-prompt", "openai-messages", tmp_path / "o.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    messages = document["messages"]
    results, _ = read_run(run_dir)
    winner = results["candidates"][0]["setup"]["search"]["winner"]
    assert winner["instruction"] == magic and winner["demos"] == "stratified"
    assert messages[0]["content"] == results["candidates"][0]["setup"]["search"]["prompt"]
    assert messages[0]["content"].startswith(magic)
    assert document["tunewise"]["demo_ids"] == winner["demo_ids"]
    assert len(messages) == 1 + 2 * 2 + 1 and messages[-1]["content"] == "{{input}}"


def test_a_text_task_records_its_repairs_and_no_label_note(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    folder = tmp_path / "text-task"
    rows = [(f"what is item {i}?", f"item {i}") for i in range(6)]
    write_jsonl(folder / "data" / "train.jsonl", rows)
    write_jsonl(folder / "data" / "test.jsonl", rows[:3])
    (folder / "task.yaml").write_text(
        TEXT_TASK + "candidates:\n  - {strategy: zero-shot}\n", encoding="utf-8"
    )
    run_dir = write_run(measure(folder / "task.yaml"), tmp_path / "runs")
    path = export_prompt(run_dir, "zero-shot", "openai-messages", tmp_path / "z.json")
    document = json.loads(path.read_text(encoding="utf-8"))
    assert [m["role"] for m in document["messages"]] == ["system", "user"]
    header = document["tunewise"]
    assert header["metric"]["name"] == "token_f1" and header["demo_ids"] == []
    assert header["decoding"] == "free" and header["max_repairs"] == 2
    text = export_prompt(run_dir, "zero-shot", "text", tmp_path / "z.txt").read_text("utf-8")
    assert "scored the labels" not in text and "Example 1" not in text
