"""The ladder's steps on a simulated world (simulated_ladder.py): which step runs, and when it
stops; the decision is the real one."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TEXT_TASK
from simulated_ladder import READER_QUALITY, World, climb, qa_task, statuses, with_documents

from tunewise.deciding.next_step import next_step
from tunewise.measuring.selection import suggested_command
from tunewise.run import RunOptions
from tunewise.task.config import Task
from tunewise.task.loading import load_task


@pytest.fixture
def task(tiny_task: Path) -> Task:
    return load_task(tiny_task)  # target accuracy >= 0.6


def test_prompting_that_meets_the_target_stops_the_ladder_and_says_why(task: Task) -> None:
    # zero-shot meets the target: a fine-tuned model answers with the same short prompt, so it
    # cannot save compute per request.
    world = World({"zero-shot": 0.7, "few-shot": 0.65, "lora": 0.9})
    ladder, record = climb(task, world)
    assert [r.name for r in ladder.results] == ["zero-shot", "few-shot"]
    assert record.stopped is not None and "cannot win on cost" in record.stopped
    assert statuses(record) == {1: "run", 2: "skipped", 3: "stopped"}
    step3 = record.steps[-1]
    assert step3.command == "tunewise run task.yaml --strategies zero-shot,few-shot,lora"


def test_a_winner_whose_long_prompt_costs_more_than_training_climbs_on(task: Task) -> None:
    # few-shot meets the target but costs 0.5 s more per answer than zero-shot; over the horizon
    # (1,000 requests/month x 6) that is far more than the training, so LoRA is measured.
    world = World({"zero-shot": 0.5, "few-shot": 0.7, "lora": 0.9},
                  per_answer={"zero-shot": 0.01, "few-shot": 0.51, "lora": 0.01})  # fmt: skip
    ladder, record = climb(task, world)
    assert [r.name for r in ladder.results] == ["zero-shot", "few-shot", "lora"]
    assert statuses(record)[3] == "run"


def test_rag_runs_only_when_the_task_has_documents(task: Task, tmp_path: Path) -> None:
    quality = {"zero-shot": 0.3, "few-shot": 0.4, "rag": 0.8, "lora": 0.5}
    ladder, record = climb(task, World(quality), trainable=False)
    assert "rag" not in [r.name for r in ladder.results]
    step2 = next(s for s in record.steps if s.step == 2)
    assert step2.status == "skipped" and "no documents" in step2.reason
    ladder, record = climb(with_documents(task, tmp_path), World(quality), trainable=False)
    # Without a budget, step 1 includes the prompt search: the fair prompting rival.
    assert [r.name for r in ladder.results] == ["zero-shot", "few-shot", "optimized-prompt", "rag"]
    assert statuses(record)[2] == "run"


def test_hybrid_runs_only_after_both_parts_help(task: Task, tmp_path: Path) -> None:
    documents = with_documents(task, tmp_path)
    helps = {"zero-shot": 0.2, "few-shot": 0.3, "rag": 0.45, "lora": 0.5, "hybrid": 0.7}
    ladder, record = climb(documents, World(helps, recall_at_1=1.0))
    measured = [r.name for r in ladder.results]
    assert measured == ["zero-shot", "few-shot", "optimized-prompt", "rag", "lora", "hybrid"]
    assert statuses(record) == {1: "run", 2: "run", 3: "run", 4: "run"}
    rag_useless = {**helps, "rag": 0.25}
    ladder, record = climb(documents, World(rag_useless, recall_at_1=1.0))
    assert "hybrid" not in [r.name for r in ladder.results]
    assert statuses(record)[4] == "skipped" and "RAG does not beat" in record.steps[-1].reason


def test_lora_below_the_500_example_gate_is_measured_and_says_so(task: Task) -> None:
    _, record = climb(task, World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.5}), train=200)
    step3 = next(s for s in record.steps if s.step == 3)
    assert step3.status == "run" and "below the framework's 500-example gate" in step3.reason


def test_fine_tuning_is_skipped_on_a_model_that_cannot_train(task: Task) -> None:
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.9})
    _, record = climb(task, world, trainable=False)
    step3 = next(s for s in record.steps if s.step == 3)
    assert step3.status == "skipped" and "local transformers" in step3.reason


def test_answers_verbatim_in_the_documents_get_extractive_rag_beside_the_free_one(
    tmp_path: Path,
) -> None:
    (tmp_path / "task.yaml").write_text(TEXT_TASK, encoding="utf-8")
    text = with_documents(load_task(tmp_path / "task.yaml"), tmp_path)  # token_f1 >= 0.5
    quality = {"zero-shot": 0.1, "few-shot": 0.1, "rag": 0.2, "rag-extractive": 0.4, "lora": 0.3}
    world = World({**quality, "rag-extractive-rerank": 0.45, "hybrid": 0.6}, metric="token_f1")
    world.params = {"rag": {"verbatim_answers": 0.9}}
    ladder, record = climb(text, world)
    names = [r.name for r in ladder.results]
    assert names[3:6] == ["rag", "rag-extractive", "rag-extractive-rerank"]
    (step2,) = [s for s in record.steps if s.step == 2]
    assert step2.candidates == ("rag", "rag-extractive", "rag-extractive-rerank")
    # The better variant is the one reranked, as it was measured apart from its passages' order.
    reranked = ladder.specs[names.index("rag-extractive-rerank")]
    assert (
        getattr(reranked, "rerank", 0) == 10 and getattr(reranked, "answer", None) == "extractive"
    )
    hybrid = ladder.specs[names.index("hybrid")]
    assert getattr(hybrid, "answer", None) == "extractive"  # as the better RAG answered
    assert getattr(hybrid, "rerank", None) == 10  # and ranked
    # Answers that are rarely verbatim, or a model whose logits cannot be masked: free only.
    world = World({**quality, "hybrid": 0.6}, metric="token_f1")
    world.params = {"rag": {"verbatim_answers": 0.3}}
    assert "rag-extractive" not in [r.name for r in climb(text, world)[0].results]
    world.params = {"rag": {"verbatim_answers": 0.9}}
    ladder, _ = climb(text, world, trainable=False)
    assert "rag-extractive" not in [r.name for r in ladder.results]
    assert "rag-rerank" not in [r.name for r in ladder.results]  # no logprobs to rerank by


def test_step_2_reranks_only_when_retrieval_left_room_and_the_budget_allows(
    task: Task, tmp_path: Path
) -> None:
    documents = with_documents(task, tmp_path)
    quality = {"zero-shot": 0.2, "few-shot": 0.3, "rag": 0.45, "lora": 0.5, "hybrid": 0.7}
    ladder, record = climb(documents, World(quality, recall_at_1=0.8))
    (step2,) = [s for s in record.steps if s.step == 2]
    assert step2.candidates == ("rag", "rag-rerank")
    assert [r.metrics["recall@1"].value for r in ladder.results if r.strategy == "rag"] == [
        0.8,
        1.0,
    ]
    # The gold document already first every time: nothing to rerank.
    ladder, record = climb(documents, World(quality, recall_at_1=1.0))
    assert "rag-rerank" not in [r.name for r in ladder.results]
    # Reranking costs about three answers' compute: a budget that fits RAG once does not fit it.
    world = World(quality, per_answer={"rag": 1.0}, recall_at_1=0.8)
    ladder, record = climb(documents, world, budget=700.0)
    (step2,) = [s for s in record.steps if s.step == 2]
    assert step2.status == "run" and step2.candidates == ("rag",)


def test_an_installed_fine_tuning_method_is_walked_at_step_3_with_its_own_warm_up(
    installed: None, task: Task
) -> None:
    # tests/plugins' (IA)3 method: registered by its entry point, nothing in tunewise names it.
    world = World({"zero-shot": 0.3, "few-shot": 0.4, "lora": 0.45, "ia3": 0.55})
    ladder, record = climb(task, world, budget=4000, train=600, test=100)
    step3 = [(s.status, s.candidates) for s in record.steps if s.step == 3]
    assert step3 == [("run", ("lora",)), ("run", ("ia3",))]
    assert {"train:lora", "train:ia3"} <= set(ladder.per_answer)  # each method timed itself
    assert type(ladder.specs[-1]).__name__ == "IA3Candidate"
    recommendation = ladder.decision()
    assert recommendation.closest == "ia3"
    measured = {r.name: (r.strategy, r.metrics["accuracy"]) for r in ladder.results}
    following = next_step(
        recommendation, record, None, measured=measured, target=task.target, train_examples=600,
        command=lambda s, **flags: suggested_command(RunOptions(), s, **flags), model="m",
    )  # fmt: skip
    assert "ia3's learning curve" in following.action
    assert following.command == "tunewise run task.yaml --strategies ia3 --learning-curve 150,300"


def test_retrieval_that_finds_but_answers_that_miss_get_the_trained_reader(
    tmp_path: Path,
) -> None:
    # A question-answering task: closed-book LoRA cannot know the facts and RAG's small model
    # cannot read the passages it is given, though retrieval finds the right document 90% of
    # the time. The hybrid, trained on the retrieving prompts, is step 4's candidate anyway.
    text, quality = qa_task(tmp_path), READER_QUALITY
    _, record = climb(text, World(quality, metric="token_f1", recall_at_5=0.9))
    step4 = next(s for s in record.steps if s.step == 4)
    assert step4.status == "run" and step4.candidates == ("hybrid",)
    assert "recall@5" in step4.reason and "90%" in step4.reason
    world = World(quality, metric="token_f1", recall_at_5=0.3)  # retrieval misses too
    _, record = climb(text, world)
    step4 = next(s for s in record.steps if s.step == 4)
    assert step4.status == "skipped" and "does not beat prompting" in step4.reason
