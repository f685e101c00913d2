"""Where an adapter trains: the trainer chosen by the task's `training:` block, the global batch
dealt out to N processes, the `accelerate launch` command, and two processes on a tiny Llama
training exactly as one does at the same global batch (gloo on CPU)."""

from __future__ import annotations

import itertools
import random
import sys
from pathlib import Path
from typing import Any

import pytest
from test_finetune import PAD, SPEC, TRAIN, VALIDATION, adapter_weights

from tunewise.errors import TunewiseError
from tunewise.finetune.batches import process_parts
from tunewise.finetune.launcher import PROGRESS, LaunchedTrainer
from tunewise.finetune.train import TrainingConfig, optimizer_steps
from tunewise.finetune.trainers import InProcessTrainer, TrainingJob, trainer_for
from tunewise.strategies.lora import LORA
from tunewise.task.training_processes import TrainingProcesses

ROOT = Path(__file__).resolve().parents[2]

# ---- dealing a global batch out -------------------------------------------------------------


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_each_process_takes_a_contiguous_part_and_together_they_take_the_batch(
    processes: int,
) -> None:
    batches = [[5, 3, 8, 1, 9], [2, 7, 13], [4, 6, 0, 10, 11, 12]]
    targets = [1] * 14
    parts = [process_parts(batches, targets, rank, processes) for rank in range(processes)]
    for number, batch in enumerate(batches):
        dealt = [row for rank in range(processes) for row in parts[rank][number][0]]
        assert dealt == batch
        sizes = [len(parts[rank][number][0]) for rank in range(processes)]
        assert max(sizes) - min(sizes) <= 1


def test_one_process_takes_each_batch_whole_at_weight_one() -> None:
    batches = [[3, 1, 2], [0]]
    assert process_parts(batches, [1, 2, 3, 4], 0, 1) == [([3, 1, 2], 1.0), ([0], 1.0)]


def test_a_batch_smaller_than_the_processes_lends_its_rows_so_none_idles() -> None:
    parts = [process_parts([[4]], [0, 0, 0, 0, 2], rank, 3)[0] for rank in range(3)]
    assert [part for part, _ in parts] == [[4], [4], [4]]
    assert [weight for _, weight in parts] == [1.0, 1.0, 1.0]


def test_the_weights_make_the_mean_of_process_means_the_batch_mean_per_answer_token() -> None:
    """DDP averages the processes' gradients: weighted, their mean loss is the global batch's
    mean per answer token, as one process computes it."""
    rng = random.Random(0)
    targets = [rng.randrange(1, 9) for _ in range(10)]
    token_losses = {i: [rng.random() for _ in range(targets[i])] for i in range(10)}
    batch = list(range(10))
    expected = sum(sum(v) for v in token_losses.values()) / sum(targets)
    for processes in (2, 3, 4):
        total = 0.0
        for rank in range(processes):
            ((part, weight),) = process_parts([batch], targets, rank, processes)
            losses = [x for i in part for x in token_losses[i]]
            total += weight * sum(losses) / len(losses)
        assert total / processes == pytest.approx(expected)


def test_optimizer_steps_count_each_process_s_share_of_the_batches() -> None:
    config = TrainingConfig.from_candidate(SPEC.model_copy(update={"batch_size": 2}), 0, LORA)
    assert optimizer_steps(24, config) == 12
    assert optimizer_steps(24, config, 2) == 6
    assert optimizer_steps(23, config, 2) == 6  # 12 batches of 2, the last of 1
    accumulating = TrainingConfig(**{**config.__dict__, "gradient_accumulation": 4})
    assert optimizer_steps(24, accumulating, 2) == 2  # 6 batches a process, a step per 4


# ---- the seam ---------------------------------------------------------------------------------


def test_the_trainer_is_chosen_by_the_task_s_training_settings(tmp_path: Path) -> None:
    assert trainer_for(TrainingProcesses()) == InProcessTrainer()
    assert trainer_for(TrainingProcesses(processes=2)) == LaunchedTrainer(2)
    config = tmp_path / "fsdp.yaml"
    chosen = trainer_for(TrainingProcesses(processes=4, accelerate_config=config))
    assert chosen == LaunchedTrainer(4, config)
    assert chosen.processes == 4


def job(root: Path, base: Path, batch_size: int = 4, dropout: float = 0.0) -> TrainingJob:
    spec = SPEC.model_copy(update={"batch_size": batch_size, "dropout": dropout})
    config = TrainingConfig.from_candidate(spec, 0, LORA)
    return TrainingJob(
        base, TRAIN, VALIDATION, config, root / "out", root / "work", PAD,
        notes={"left_out_too_long": 0}, extra_files={"train.messages.jsonl": "{}\n"},
    )  # fmt: skip


def test_a_job_round_trips_through_its_json(tmp_path: Path) -> None:
    original = job(tmp_path, tmp_path / "base")
    again = TrainingJob.from_json(original.to_json())
    assert again == TrainingJob(**{**original.__dict__, "train": TRAIN})
    assert list(again.train) == list(TRAIN) and list(again.validation) == list(VALIDATION)


def test_the_launch_on_cpu_is_ddp_over_gloo_with_the_threads_shared(tmp_path: Path) -> None:
    command, environment = LaunchedTrainer(2).command(tmp_path / "job.json", gpus=0)
    assert command[:3] == [sys.executable, "-m", "accelerate.commands.launch"]
    assert command[-3:] == ["-m", "tunewise.finetune.launcher", str(tmp_path / "job.json")]
    flags = dict(itertools.pairwise(command))
    assert "--multi_gpu" in command and flags["--num_processes"] == "2"
    assert flags["--mixed_precision"] == "no" and int(flags["--main_process_port"]) > 0
    assert int(flags["--num_cpu_threads_per_process"]) >= 1
    assert environment["ACCELERATE_USE_CPU"] == "true"


def test_the_launch_on_gpus_uses_them_and_a_config_file_decides_the_rest(tmp_path: Path) -> None:
    command, environment = LaunchedTrainer(4).command(tmp_path / "job.json", gpus=4)
    assert "--multi_gpu" in command and "--num_cpu_threads_per_process" not in command
    assert environment.get("ACCELERATE_USE_CPU") != "true"
    config = tmp_path / "fsdp.yaml"
    config.write_text("distributed_type: FSDP\n")
    command, _ = LaunchedTrainer(4, config).command(tmp_path / "job.json", gpus=1)
    assert command[command.index("--config_file") + 1] == str(config)
    assert "--multi_gpu" not in command
    assert command[command.index("--num_processes") + 1] == "4"


def test_more_processes_than_gpus_is_an_error_without_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(TunewiseError, match="--train-processes 4 needs a GPU for each process"):
        LaunchedTrainer(4).command(tmp_path / "job.json", gpus=2)


def test_a_missing_accelerate_config_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(TunewiseError, match=r"no-such\.yaml: no such accelerate config"):
        LaunchedTrainer(2, tmp_path / "no-such.yaml").command(tmp_path / "job.json")


# ---- two processes on the tiny Llama -----------------------------------------------------------


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from conftest import tiny_llama

    folder = tmp_path_factory.mktemp("tiny-llama-ddp") / "base"
    tiny_llama().save_pretrained(folder)
    return folder


def test_two_processes_train_exactly_as_one_at_the_same_global_batch(
    base: Path, tmp_path: Path
) -> None:
    """Without dropout (its masks are drawn per process), two processes of 2 examples a step
    train the same weights as one process of 4: the same global batches, gradients all-reduced,
    each process's loss weighted by its share of the answer tokens, the shared prefix computed
    once per process. What is left is summation order: 1e-4 on a loss near 4. Launched with
    the shipped examples/accelerate/ddp.yaml (on CPU: gloo)."""
    reference = InProcessTrainer().train(job(tmp_path / "one", base), lambda n: None)
    steps: list[int] = []
    trainer = LaunchedTrainer(2, ROOT / "examples" / "accelerate" / "ddp.yaml")
    record = trainer.train(job(tmp_path / "two", base, batch_size=2), steps.append)
    assert sum(steps) == record["steps"] == reference["steps"] == 12
    assert record["processes"] == 2 and record["shared_prefix_tokens"] > 0
    for ours, theirs in zip(record["loss_curve"], reference["loss_curve"], strict=True):
        assert ours["step"] == theirs["step"]
        assert ours["train_loss"] == pytest.approx(theirs["train_loss"], abs=1e-4)
        assert ours["validation_loss"] == pytest.approx(theirs["validation_loss"], abs=1e-4)
    prefix_again = record["shared_prefix_tokens"] * record["steps"]  # once more per step
    assert record["tokens_trained"] == reference["tokens_trained"] + prefix_again
    got, expected = (
        adapter_weights(tmp_path / "two" / "out"),
        adapter_weights(tmp_path / "one" / "out"),
    )
    assert got.keys() == expected.keys()
    for name in expected:
        assert (got[name] - expected[name]).abs().max() < 1e-4, name
    out = tmp_path / "two" / "out"
    assert (out / "train.messages.jsonl").read_text() == "{}\n"
    assert not (tmp_path / "two" / "work").exists()


def test_a_failed_launch_is_an_error_with_what_the_processes_wrote(tmp_path: Path) -> None:
    broken = job(tmp_path, tmp_path / "no-model-here")
    with pytest.raises(
        TunewiseError, match=r"training on 2 processes failed \(exit code"
    ) as caught:
        LaunchedTrainer(2).train(broken, lambda n: None)
    message = str(caught.value)
    assert "rank 0: OSError" in message and "rank 1: OSError" in message
    assert "no-model-here" in message


def test_a_failure_names_each_process_s_exception_else_ends_with_what_was_written() -> None:
    from collections import deque

    from tunewise.finetune.launcher import _what_failed

    errors = [
        "[rank1]: Traceback (most recent call last):\n",
        "[rank1]:   File 'x.py', line 1, in <module>\n",
        "[rank1]: torch.OutOfMemoryError: CUDA out of memory\n",
        "E1207 failed (exitcode: 1) local_rank: 1\n",
        "torch.distributed.elastic.multiprocessing.errors.ChildFailedError:\n",
    ]
    assert _what_failed(errors, deque()) == "rank 1: torch.OutOfMemoryError: CUDA out of memory"
    assert _what_failed(["Killed\n"], deque(["last words\n"])) == "Killed\nlast words"


def test_progress_lines_are_the_only_stdout_the_launch_reads_as_steps() -> None:
    from tunewise.finetune.launcher import _follow

    steps: list[int] = []
    lines = [f"{PROGRESS} 3\n", "a warning\n", f"{PROGRESS} 1\n"]
    kept: Any = _follow(iter(lines), steps.append)  # type: ignore[arg-type]
    assert steps == [3, 1] and list(kept) == ["a warning\n"]
