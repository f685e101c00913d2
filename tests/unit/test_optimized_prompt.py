"""The optimized-prompt strategy: instruction x demo-set search by successive halving on a
validation slice of train, its trace in results.json and the report, and the decision."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from conftest import TASK_YAML, ScriptedBackend, keyword_rule, measure, read_run, write_jsonl

from tunewise.core.catalog import default_candidate
from tunewise.deciding.decide import decide
from tunewise.deciding.verdict import CandidateSummary
from tunewise.errors import TaskError, TunewiseError
from tunewise.evaluation import MetricValue
from tunewise.measuring.selection import candidate_specs, ladder_settings, pinned
from tunewise.models.backend import Message
from tunewise.models.registry import register_backend, unregister_backend
from tunewise.records.results import load_schema, write_run
from tunewise.run import RunOptions
from tunewise.strategies.optimized_prompt import OptimizedPromptCandidate
from tunewise.strategies.optimized_prompt.optimized_prompt_trials import (
    PROPOSER_SYSTEM,
    DemoSet,
    Trial,
    clean_instruction,
    successive_halving,
)
from tunewise.strategies.optimized_prompt.prompt_search import prepare
from tunewise.task.config import Target
from tunewise.task.loading import load_task

WORDS = {"positive": "great", "negative": "awful", "neutral": "plain"}
LABELS = list(WORDS)
TRAIN = [(f"item {i} looks {WORDS[LABELS[i % 3]]} w{i}", LABELS[i % 3]) for i in range(60)]
TEST = [(f"testonly{i} gadget is {WORDS[LABELS[i % 3]]}", LABELS[i % 3]) for i in range(12)]
OBJECTIVE = "Classify the sentiment of one product review sentence."  # conftest's TASK_YAML
MAGIC = "Use the MAGIC cue words to pick the label."
PROPOSALS = ["Decide the sentiment label carefully.", MAGIC, "Pick the label that fits best."]
knows_words = keyword_rule({"great": "positive", "awful": "negative"}, "neutral")


def task_file(tmp_path: Path, candidates: str = "") -> Path:
    folder = tmp_path / "opt-task"
    write_jsonl(folder / "data" / "train.jsonl", TRAIN)
    write_jsonl(folder / "data" / "test.jsonl", TEST)
    (folder / "task.yaml").write_text(TASK_YAML + candidates, encoding="utf-8")
    return folder / "task.yaml"


def only(strategy: str = "optimized-prompt", **options: Any) -> str:
    lines = [f"  - strategy: {strategy}", *(f"    {k}: {v}" for k, v in options.items())]
    return "candidates:\n" + "\n".join(lines) + "\n"


def is_proposal(messages: Sequence[Message]) -> bool:
    return messages[0]["content"] == PROPOSER_SYSTEM


def magic_rule(messages: Sequence[Message]) -> str:
    """Right only when the system prompt carries the MAGIC instruction; else always neutral."""
    return knows_words(messages) if "MAGIC" in messages[0]["content"] else "neutral"


def copy_last_demo(messages: Sequence[Message]) -> str:
    """Answers with the label of the demo just before the input (right with similar demos)."""
    return messages[-2]["content"] if messages[-2]["role"] == "assistant" else "neutral"


def script_proposals(backend: ScriptedBackend) -> None:
    backend.sample = lambda messages, seed: PROPOSALS[seed % len(PROPOSALS)]


def search_of(result: Any) -> dict[str, Any]:
    assert result.setup.search is not None
    return result.setup.search.record()


# ---- what the search picks -------------------------------------------------------------------


def test_the_search_picks_the_instruction_the_model_answers_best(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    run = measure(task_file(tmp_path, only()), strategies=("few-shot", "optimized-prompt"))
    few, opt = run.candidates
    search = search_of(opt)
    assert search["proposer"]["kept"] == 3
    instructions = {t["instruction"] for t in search["trials"]}
    assert instructions == {OBJECTIVE, *PROPOSALS}
    assert search["winner"]["instruction"] == MAGIC
    assert search["winner"]["score"] == 1.0
    assert search["prompt"].startswith(MAGIC + "\n")
    assert opt.params["winner_trial"] == search["winner"]["trial"]
    # Acceptance: at least plain few-shot (trial 0, scored on every rung) on validation ...
    baseline = search["trials"][0]
    assert (baseline["instruction"], baseline["demos"]) == (OBJECTIVE, "stratified")
    assert baseline["rungs"][-1]["examples"] == search["winner"]["examples"]
    assert search["winner"]["score"] >= baseline["rungs"][-1]["score"]
    # ... and on test, within the few-shot's CI or better.
    assert opt.metrics["accuracy"].value >= few.metrics["accuracy"].ci_low
    assert opt.metrics["accuracy"].value == 1.0 > few.metrics["accuracy"].ci_high


def test_the_search_picks_the_demo_set_the_model_answers_best(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = copy_last_demo
    (opt,) = measure(task_file(tmp_path, only(instructions=0))).candidates
    search = search_of(opt)
    assert [t["demos"] for t in search["trials"]] == ["stratified", "bootstrapped", "similar"]
    assert search["winner"]["demos"] == "similar" and search["winner"]["demo_ids"] is None
    assert opt.metrics["accuracy"].value == 1.0
    # Bootstrapped demos are pool examples the plain prompt (always "neutral") got right.
    bootstrapped = search["trials"][1]["demo_ids"]
    outputs = {f"train-{i}": y for i, (_, y) in enumerate(TRAIN)}
    assert bootstrapped and {outputs[i] for i in bootstrapped} == {"neutral"}


def test_unusable_and_repeated_proposals_are_left_out(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = knows_words
    answers = ["", OBJECTIVE, "Instruction: Say which label fits."]
    scripted.sample = lambda messages, seed: answers[seed]
    (opt,) = measure(task_file(tmp_path, only())).candidates
    search = search_of(opt)
    assert search["proposer"] | {"requests": 0} == search["proposer"] | {
        "model": "scripted:test", "asked": 3, "kept": 1, "requests": 0
    }  # fmt: skip
    assert {t["instruction"] for t in search["trials"]} == {
        OBJECTIVE,
        "Say which label fits.",
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('"Label each review by its tone."', "Label each review by its tone."),
        ("1. Label each review.\nMore text", "Label each review."),
        ("Instruction:   read it   then label it", "read it then label it"),
        ("positive", None),
        ("", None),
    ],
)
def test_clean_instruction(text: str, expected: str | None) -> None:
    assert clean_instruction(text) == expected


# ---- successive halving ----------------------------------------------------------------------


def fake_trials(n: int) -> list[Trial]:
    demos = DemoSet("stratified", lambda _: (), ())
    return [Trial(i, f"instruction {i}", demos) for i in range(n)]


def test_halving_keeps_the_better_half_doubles_the_examples_and_never_drops_trial_0() -> None:
    asked: list[tuple[list[int], int]] = []

    def score(trials: Sequence[Trial], size: int) -> list[float]:
        asked.append(([t.number for t in trials], size))
        return [t.number / 100 for t in trials]  # trial 0 is the worst

    winner, rungs = successive_halving(fake_trials(12), 48, score)
    assert asked == [
        (list(range(12)), 12),
        ([0, 6, 7, 8, 9, 10, 11], 24),
        ([0, 9, 10, 11], 48),
    ]
    assert winner.number == 11
    assert [len(rungs[n]) for n in range(12)] == [3, 1, 1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert rungs[11][-1].examples == 48 and rungs[0][-1].examples == 48


def test_halving_stops_when_one_trial_is_left_and_ties_go_to_the_lower_trial() -> None:
    sizes: list[int] = []

    def score(trials: Sequence[Trial], size: int) -> list[float]:
        sizes.append(size)
        return [0.5 for _ in trials]

    winner, rungs = successive_halving(fake_trials(2), 100, score)
    assert sizes == [25, 50] and winner.number == 0
    assert [r.examples for r in rungs[0]] == [25, 50] and len(rungs[1]) == 1


def test_a_single_trial_is_scored_on_the_whole_slice() -> None:
    winner, rungs = successive_halving(fake_trials(1), 30, lambda trials, size: [1.0])
    assert winner.number == 0 and [r.examples for r in rungs[0]] == [30]


def test_the_trial_cap_keeps_trial_0_and_a_seeded_choice(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = knows_words
    script_proposals(scripted)
    (opt,) = measure(task_file(tmp_path, only(trials=5))).candidates
    numbers = [t["trial"] for t in search_of(opt)["trials"]]
    assert len(numbers) == 5 and numbers[0] == 0 and numbers == sorted(numbers)
    assert max(numbers) < 12  # drawn from the 4 instructions x 3 demo sets


def test_the_search_asks_each_trial_each_example_once_and_counts_every_call(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    (opt,) = measure(task_file(tmp_path, only())).candidates
    search = search_of(opt)
    assert search["validation_examples"] == 30 and search["pool_examples"] == 30
    sizes = sorted({r["examples"] for t in search["trials"] for r in t["rungs"]})
    assert sizes == [8, 16, 30]
    alive = [sum(1 for t in search["trials"] if len(t["rungs"]) > i) for i in range(3)]
    assert alive[0] == 12 and alive[1] < alive[0] and alive[2] < alive[1]
    validation_calls = sum(t["rungs"][-1]["examples"] for t in search["trials"])
    expected = search["proposer"]["asked"] + search["bootstrap"]["tried"] + validation_calls
    assert search["calls"] == search["requests"] == expected
    assert len(scripted.calls) == expected + len(TEST)
    assert opt.setup.seconds == search["seconds"] > 0


# ---- the test split stays unseen -------------------------------------------------------------


def test_no_test_input_is_sent_before_the_test_evaluation(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    (opt,) = measure(task_file(tmp_path, only())).candidates
    searched = search_of(opt)["calls"]
    during = scripted.calls[:searched]
    assert during and not any("testonly" in m["content"] for call in during for m in call)
    after = [call[-1]["content"] for call in scripted.calls[searched:]]
    assert sorted(after) == sorted(x for x, _ in TEST)
    shown = {i for t in search_of(opt)["trials"] for i in (t["demo_ids"] or [])}
    assert shown and all(i.startswith("train-") for i in shown)


def test_prepare_searches_only_what_it_is_given(scripted: ScriptedBackend, tmp_path: Path) -> None:
    """The preparer's world is the train list it receives: nothing else is read or asked."""
    from tunewise.task.data import Example

    scripted.rule = knows_words
    task = load_task(task_file(tmp_path))
    train = [Example(f"t{i}", x, y, "t") for i, (x, y) in enumerate(TRAIN[:20])]
    spec = OptimizedPromptCandidate(strategy="optimized-prompt", instructions=0)
    predictor = prepare(task, spec, train, scripted, "opt")
    sent = {m["content"] for call in scripted.calls for m in call}
    assert not any("testonly" in text for text in sent)
    inputs = {m["content"] for call in scripted.calls for m in call if m["role"] == "user"}
    assert inputs <= {x for x, _ in TRAIN[:20]}
    assert predictor.setup.search is not None
    assert predictor.setup.search.record()["validation_examples"] == 10


def test_too_little_training_data_is_a_clear_error(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    from tunewise.task.data import Example

    task = load_task(task_file(tmp_path))
    train = [Example(f"t{i}", x, y, "t") for i, (x, y) in enumerate(TRAIN[:3])]
    spec = OptimizedPromptCandidate(strategy="optimized-prompt")
    with pytest.raises(TunewiseError, match="at least 4 training examples"):
        prepare(task, spec, train, scripted, "opt")


# ---- results.json, the report, the decision, the cache ---------------------------------------


def test_trace_and_winner_are_in_results_json_and_the_reports(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    folder = write_run(measure(task_file(tmp_path, only())), tmp_path / "runs")
    results, _ = read_run(folder)
    jsonschema.validate(results, load_schema("results"))
    (entry,) = results["candidates"]
    search = entry["setup"]["search"]
    assert entry["strategy"] == "optimized-prompt" and len(search["trials"]) == 12
    assert search["winner"]["instruction"] == MAGIC and MAGIC in search["prompt"]
    assert entry["params"]["demo_set"] == search["winner"]["demos"]
    md = (folder / "report.md").read_text(encoding="utf-8")
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "## Prompt search" in md and "<h2>Prompt search</h2>" in html
    assert f"| {search['winner']['trial']} (winner) | {MAGIC} |" in md
    assert "accuracy @ 8" in md and "accuracy @ 30" in md
    assert f"    {MAGIC}" in md  # the winning prompt, verbatim
    assert MAGIC in html and "12 trials scored by successive halving" in html


def test_the_decision_counts_optimized_prompt_as_step_1(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    run = measure(task_file(tmp_path, only()), strategies=("zero-shot", "optimized-prompt"))
    assert run.recommendation.candidate == "optimized-prompt"
    assert run.recommendation.step == 1 and run.recommendation.verdict == "meets-target"
    good = CandidateSummary("opt", "optimized-prompt", MetricValue(0.9, 0.8, 0.95, 50), 80, 10)
    decided = decide(
        [good], Target(metric="accuracy", min=0.85), "accuracy", train_examples=60,
        has_documents=False,
    )  # fmt: skip
    assert (decided.candidate, decided.step, decided.gates[0].passed) == ("opt", 1, True)


def test_a_rerun_is_served_from_the_cache(scripted: ScriptedBackend, tmp_path: Path) -> None:
    scripted.rule = magic_rule
    script_proposals(scripted)
    file = task_file(tmp_path, only())
    (first,) = measure(file).candidates
    scripted.calls.clear()
    (again,) = measure(file).candidates
    assert scripted.calls == []
    assert search_of(again)["calls"] == 0 and search_of(first)["calls"] > 0
    assert search_of(again)["requests"] == search_of(first)["requests"]
    assert search_of(again)["trials"] == search_of(first)["trials"]
    assert again.setup.seconds == first.setup.seconds  # the search's measured cost


def test_a_separate_proposer_model_writes_the_instructions(
    scripted: ScriptedBackend, tmp_path: Path
) -> None:
    scripted.rule = knows_words
    writer = ScriptedBackend(lambda messages: "Say which label fits the review.")
    writer.spec = "writer:x"
    register_backend("writer", lambda rest: writer)
    try:
        (opt,) = measure(task_file(tmp_path, only(proposer="writer:x"))).candidates
    finally:
        unregister_backend("writer")
    search = search_of(opt)
    assert len(writer.calls) == 3 and all(is_proposal(call) for call in writer.calls)
    assert not any(is_proposal(call) for call in scripted.calls)
    assert search["proposer"]["model"] == "writer:x" and search["proposer"]["kept"] == 1
    assert search["proposer"]["requests"] == 3 and opt.params["proposer"] == "writer:x"


def test_the_search_compute_counts_as_setup_cost(scripted: ScriptedBackend, tmp_path: Path) -> None:
    scripted.rule = knows_words
    (opt,) = measure(task_file(tmp_path, only(instructions=0))).candidates
    assert opt.cost_inputs().setup_seconds == pytest.approx(search_of(opt)["seconds"])


# ---- the task file and --strategies ----------------------------------------------------------


def test_task_yaml_keys_and_defaults(tmp_path: Path) -> None:
    task = load_task(task_file(tmp_path, only(trials=8, k=2, validation_examples=20)))
    (spec,) = task.candidates
    assert isinstance(spec, OptimizedPromptCandidate)
    assert (spec.trials, spec.k, spec.validation_examples) == (8, 2, 20)
    assert (spec.instructions, spec.proposer, spec.opt_in) == (3, None, False)
    default = default_candidate("optimized-prompt")
    assert isinstance(default, OptimizedPromptCandidate) and default.trials == 16
    with pytest.raises(TaskError, match="rounds"):
        load_task(task_file(tmp_path / "bad", only(rounds=3)))


def test_strategies_option_accepts_optimized_prompt(tmp_path: Path) -> None:
    task = load_task(task_file(tmp_path, only(opt_in="true")))
    assert not pinned(task, RunOptions())  # an opt-in candidate pins nothing: the ladder runs
    assert ladder_settings(task)("optimized-prompt") == task.candidates[0]
    assert ladder_settings(task)("zero-shot") == default_candidate("zero-shot")
    (spec,) = candidate_specs(task, RunOptions(strategies=("optimized-prompt",)))
    assert spec.strategy == "optimized-prompt" and spec.opt_in


def test_results_schema_documents_the_search_record() -> None:
    schema = load_schema("results")
    candidate = schema["$defs"]["candidate"]["properties"]
    assert "optimized-prompt" in candidate["strategy"]["enum"]
    search = candidate["setup"]["properties"]["search"]
    assert {"trials", "winner", "prompt", "calls", "seconds"} <= set(search["required"])
    json.dumps(search)  # plain JSON
