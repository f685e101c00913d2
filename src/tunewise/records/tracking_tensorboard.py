"""TensorBoard: event files under <out>/tensorboard/<run id>/<candidate>/, one folder per
candidate, so `tensorboard --logdir <out>/tensorboard` compares candidates and runs.

Written with torch's SummaryWriter (it needs the tensorboard package) into a staging folder and
moved into place, so a half-written log never shows up.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

from tunewise.records.tracking import CandidateLog, RunLog


def log(run: RunLog) -> str:
    """Write the run's event files; says where."""
    root = run.out / "tensorboard"
    root.mkdir(parents=True, exist_ok=True)
    target = root / folder_name(run.run_id)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        for candidate in run.candidates:
            _write(staging / folder_name(candidate.name), run, candidate)
        _move_in(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return f"{target} (`tensorboard --logdir {root}`)"


def folder_name(name: str) -> str:
    """A candidate or run name as one folder name."""
    return re.sub(r"[^\w.-]", "_", name).lstrip(".") or "_"


def _write(folder: Path, run: RunLog, candidate: CandidateLog) -> None:
    from torch.utils.tensorboard import SummaryWriter
    from torch.utils.tensorboard.summary import hparams

    writer = SummaryWriter(log_dir=str(folder))
    try:
        for name, value in candidate.metrics.items():
            writer.add_scalar(name, value, 0, walltime=run.ended_ms / 1000)
        for step, values in candidate.curve:
            for series, value in values.items():
                writer.add_scalar(series, value, step, walltime=run.ended_ms / 1000)
        writer.add_text("recommendation", run.summary, 0)
        rows = [f"| {k} | {v} |" for k, v in {**candidate.params, **candidate.tags}.items()]
        writer.add_text("params", "\n".join(["| key | value |", "|---|---|", *rows]), 0)
        # The HParams tab: the candidate's settings against its quality figures.
        quality = {k: v for k, v in candidate.metrics.items() if "." not in k}
        for summary in hparams(dict(candidate.params), quality):
            writer.file_writer.add_summary(summary)  # type: ignore[union-attr]
    finally:
        writer.close()


def _move_in(staging: Path, target: Path) -> None:
    """The staged run folder becomes `target`; logged again, its new event files join the
    candidates' folders already there (file renames, so each file appears whole)."""
    try:
        os.rename(staging, target)
        return
    except OSError:
        if not target.is_dir():
            raise
    for source in staging.rglob("*"):
        if source.is_file():
            moved = target / source.relative_to(staging)
            moved.parent.mkdir(parents=True, exist_ok=True)
            os.rename(source, moved)
