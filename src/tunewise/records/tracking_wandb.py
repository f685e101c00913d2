"""Weights & Biases: one run per candidate, grouped by the tunewise run id.

wandb reads its own settings: WANDB_MODE (online, offline, disabled), WANDB_PROJECT (else
"tunewise"), WANDB_ENTITY, WANDB_DIR (else the folder holding the run folder) and, online, the
key `wandb login` stored or WANDB_API_KEY. tunewise never reads, prints or logs the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from tunewise.records.tracking import CandidateLog, RunLog, TrackingError

PROJECT = "tunewise"


def log(run: RunLog) -> str:
    """Log each candidate as a run; says where they went."""
    project = os.environ.get("WANDB_PROJECT") or PROJECT
    folder = os.environ.get("WANDB_DIR") or str(run.out)
    urls = [_candidate(run, candidate, project, folder) for candidate in run.candidates]
    online = next((url for url in urls if url), None)
    where = online or f"offline in {Path(folder) / 'wandb'}; `wandb sync` uploads them"
    if os.environ.get("WANDB_MODE") == "disabled":
        where = "WANDB_MODE=disabled: nothing was kept"
    return f"{len(urls)} runs in project '{project}', group '{run.run_id}' ({where})"


def _candidate(run: RunLog, candidate: CandidateLog, project: str, folder: str) -> str | None:
    """Log one candidate's run; its URL, or None when offline."""
    import wandb

    try:
        wb = _init(wandb, run, candidate, project, folder)
    except wandb.errors.UsageError as exc:  # e.g. online without a key
        hint = "or set WANDB_MODE=offline to keep the runs here"
        raise TrackingError(f"{str(exc).rstrip('.')}, {hint}") from None
    try:
        for step, values in candidate.curve:  # history: the loss curve at its training steps
            wb.log(dict(values), step=step)
        wb.summary.update(candidate.metrics)
        if run.artifacts:
            name = re.sub(r"[^\w.-]", "-", f"tunewise-{run.run_id}")
            artifact = wandb.Artifact(name, type="tunewise-run")
            for path in run.artifacts:
                artifact.add_file(str(path))
            wb.log_artifact(artifact)
    except BaseException:
        wb.finish(exit_code=1)
        raise
    url = None if wb.offline else wb.url
    wb.finish()
    return url


def _init(wandb: Any, run: RunLog, candidate: CandidateLog, project: str, folder: str) -> Any:
    recommended = candidate.tags["recommended"] == "true"
    return wandb.init(
        project=project,
        group=run.run_id,
        name=candidate.name,
        job_type="candidate",
        notes=run.summary,
        tags=[str(candidate.params["strategy"]), *(["recommended"] if recommended else [])],
        config={**candidate.params, **candidate.tags},
        dir=folder,
        reinit="create_new",
        settings=_settings(wandb),
    )


def _settings(wandb: Any) -> Any:
    """Quiet, and nothing collected beyond what tunewise logs: no console capture, code, git
    state, package list or system metrics."""
    return wandb.Settings(
        silent=True,
        console="off",
        save_code=False,
        disable_git=True,
        disable_job_creation=True,
        x_save_requirements=False,
        x_disable_stats=True,
        x_disable_meta=True,
    )
