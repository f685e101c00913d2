"""`tunewise plan`: what the ladder would run, and what each step costs on this machine; the
same table `tunewise run` prints before its ladder spends anything."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from tunewise.cli.terminal import console, quiet_libraries, user_errors
from tunewise.core.budget import DEFAULT_BUDGET

if TYPE_CHECKING:
    from tunewise.deciding.plan import LadderPlan


def _time(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _usd(usd: float | None) -> str:
    return "" if usd is None else f", ${usd:,.4f}" if usd < 1 else f", ${usd:,.2f}"


def show_plan(out: Console, name: str, plan: LadderPlan, budget: float | None) -> None:
    """The plan's step table and its totals, with the timing it rests on."""
    table = Table(title=f"{name}: the ladder's plan on this machine")
    for column in ("step", "runs", "smallest useful", "full size", "stops the ladder if"):
        table.add_column(column)
    for step in plan.steps:
        table.add_row(
            f"{step.step}. {step.title}", step.runs,
            _time(step.smallest_seconds) + _usd(step.smallest_usd),
            _time(step.full_seconds) + _usd(step.full_usd), step.stops_if,
        )  # fmt: skip
    out.print(table)
    timing = plan.timing
    smallest = sum(s.smallest_seconds for s in plan.steps)
    full = sum(s.full_seconds for s in plan.steps)
    room = "no budget" if budget is None else f"a budget of {_time(budget)}"
    if timing.train_seconds_per_example is None:
        training = (
            "; no training timed: fine-tuning cannot run here, or not within the budget or the "
            "plan's time (`tunewise run` times a warm-up where the budget allows one)."
        )
    elif timing.warm_up_examples == 0:
        training = (
            f", {timing.train_seconds_per_example:.2f} s per training example (about three "
            "forward passes: no warm-up training fitted the plan's time; `tunewise run` times "
            "one)."
        )
    else:
        training = (
            f", {timing.train_seconds_per_example:.2f} s per training example (a "
            f"{timing.warm_up_examples}-example warm-up)."
        )
    out.print(
        f"Every step at its smallest useful size: about {_time(smallest)}; all at full size: "
        f"about {_time(full)}; with {room}. Timed on {timing.test_examples:,} test and "
        f"{timing.train_examples:,} training examples: "
        f"{timing.seconds_per_answer:.3f} s per answer + {timing.seconds_per_token * 1000:.3f} "
        f"ms per prompt token{training}",
        markup=False,
    )


def plan(
    task_file: Annotated[Path, typer.Argument(help="The task.yaml to plan.")],
    budget: Annotated[
        str, typer.Option(help="The compute budget `tunewise run` would have (or none).")
    ] = DEFAULT_BUDGET,
    model: Annotated[str | None, typer.Option(help="Model spec (overrides task.yaml).")] = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Plan for N test examples (as run --limit N).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Estimate each step of the ladder on this machine before spending anything: a few
    answers and a short warm-up training (sized to the budget, as `tunewise run` sizes it) are
    timed on the task's own examples (both cached for the run), then each step is priced at
    its smallest useful size and at full size, with the result that would stop the ladder
    there."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.core.budget import parse_budget
        from tunewise.options import RunOptions
        from tunewise.planning import plan_task
        from tunewise.task.loading import load_task

        task = load_task(task_file)
        seconds = parse_budget(budget)
        planned = plan_task(task, RunOptions(model=model, limit=limit, budget=seconds))
        show_plan(console, task.name, planned, seconds)
