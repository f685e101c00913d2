"""Experiment trackers on the command line: `tunewise run --log ...` and `tunewise log RUN`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunewise.cli.terminal import console, quiet_libraries, user_errors

LOG_HELP = (
    "Also log the written run to experiment trackers: mlflow, wandb, tensorboard "
    "(comma-separated). Each needs its extra, e.g. pip install 'tunewise[mlflow]'."
)


def trackers(value: str | None, flag: str = "--log") -> tuple[str, ...]:
    """The trackers asked for, each checked importable (call before any work starts)."""
    from tunewise.records.tracking import parse_trackers

    return parse_trackers(value, flag)


def log_written(folder: Path, names: tuple[str, ...]) -> None:
    """Log a written run folder and say where each tracker put it."""
    if not names:
        return
    from tunewise.records.tracking import log_run

    for line in log_run(folder, names):
        console.print(f"logged to {line}", markup=False, soft_wrap=True)


def log(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    to: Annotated[
        str, typer.Option("--to", help="Trackers: mlflow, wandb, tensorboard (comma-separated).")
    ],
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Log a finished run to experiment trackers: a run per candidate with its settings,
    quality figures with CIs, usage, cost and loss curve, and the report. Logging again adds
    new runs."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        names = trackers(to, "--to")
        if not names:
            from tunewise.errors import TunewiseError

            raise TunewiseError("--to: name at least one of mlflow, wandb, tensorboard")
        log_written(run_dir, names)


def register(app: typer.Typer) -> None:
    app.command("log")(log)
