"""Where an adapter trains: in this process, or on N processes under `accelerate launch`.

A trainer takes one TrainingJob (everything train_adapter needs, as plain data) and returns the
training record; the adapter then lies complete in the job's `out` folder, and the caller goes
on as it does with a cached adapter. Which trainer runs is a value (the task's `training:` block,
or --train-processes), turned into a trainer once by trainer_for. Both run the same loop,
train_adapter; under several processes each one runs it, rank 0 alone writes (checkpoints, the
adapter, training.json) and reports progress as lines this process reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from tunewise.finetune.examples import TrainingSequence
from tunewise.finetune.train import Advance, TrainingConfig, train_adapter
from tunewise.task.training_processes import TrainingProcesses

JOB_FILE = "job.json"  # in the job's work folder, next to its checkpoints


@dataclass(frozen=True)
class TrainingJob:
    """One adapter to train: train_adapter's arguments, less the progress callback."""

    base_folder: Path
    train: Sequence[TrainingSequence]
    validation: Sequence[TrainingSequence]
    config: TrainingConfig
    out: Path
    work: Path
    pad_id: int
    notes: Mapping[str, Any] = field(default_factory=dict)
    extra_files: Mapping[str, str] = field(default_factory=dict)

    def run(self, advance: Advance) -> dict[str, Any]:
        """Train in this process (one rank of several, under accelerate launch, or alone)."""
        return train_adapter(
            self.base_folder, self.train, self.validation, self.config, self.out, self.work,
            self.pad_id, advance=advance, notes=self.notes, extra_files=self.extra_files,
        )  # fmt: skip

    def to_json(self) -> str:
        sequences = {
            split: [[s.example_id, list(s.input_ids), list(s.labels)] for s in rows]
            for split, rows in (("train", self.train), ("validation", self.validation))
        }
        document = {
            "base_folder": str(self.base_folder), "out": str(self.out), "work": str(self.work),
            "config": asdict(self.config), "pad_id": self.pad_id, "notes": dict(self.notes),
            "extra_files": dict(self.extra_files), **sequences,
        }  # fmt: skip
        return json.dumps(document)

    @classmethod
    def from_json(cls, text: str) -> TrainingJob:
        document = json.loads(text)
        train, validation = (
            [TrainingSequence(i, tuple(ids), tuple(labels)) for i, ids, labels in document[split]]
            for split in ("train", "validation")
        )
        return cls(
            Path(document["base_folder"]), train, validation,
            TrainingConfig(**document["config"]), Path(document["out"]), Path(document["work"]),
            document["pad_id"], document["notes"], document["extra_files"],
        )  # fmt: skip


class Trainer(Protocol):
    """Trains one job; `processes` sets the global batch (processes x batch_size)."""

    @property
    def processes(self) -> int: ...

    def train(self, job: TrainingJob, advance: Advance) -> dict[str, Any]:
        """Train the adapter into job.out, resuming from job.work's checkpoint; the record."""
        ...


@dataclass(frozen=True)
class InProcessTrainer:
    """Training in this process: one CPU, or one GPU."""

    processes: int = 1

    def train(self, job: TrainingJob, advance: Advance) -> dict[str, Any]:
        return job.run(advance)


def trainer_for(settings: TrainingProcesses) -> Trainer:
    """The trainer the settings ask for: this process for one, accelerate launch for more."""
    if settings.processes == 1 and settings.accelerate_config is None:
        return InProcessTrainer()
    from tunewise.finetune.launcher import LaunchedTrainer

    return LaunchedTrainer(settings.processes, settings.accelerate_config)
