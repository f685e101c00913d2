"""The ladder's walk and the next step, for the top of the report (from results.json only)."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.report.cells import Table, seconds
from tunewise.schemas.run_file import RunRecord


@dataclass(frozen=True)
class NextAction:
    action: str
    command: str | None


def next_action(run: RunRecord) -> NextAction | None:
    step = run.recommendation.next_step if run.recommendation else None
    return NextAction(step.action, step.command) if step else None


def ladder_table(run: RunRecord) -> Table | None:
    """One row per step: what ran, how long it took, why, and the command for what did not."""
    if not run.ladder:
        return None
    rows = [
        [
            str(step.step),
            step.title,
            step.status,
            seconds(step.seconds) if step.status == "run" else "-",
            step.reason,
            step.command if step.command and step.status != "skipped" else "-",
        ]
        for step in run.ladder.steps
    ]
    return Table(["Step", "", "Status", "Time", "Why", "Command"], rows)


def ladder_notes(run: RunRecord) -> list[str]:
    """The budget, every reduction it made, and why the ladder stopped."""
    ladder = run.ladder
    if not ladder:
        return []
    budget = ladder.budget_seconds
    spent = f"{ladder.seconds / 60:.1f} min"
    notes = [
        f"Budget: {'none' if budget is None else f'{budget / 60:.1f} min'}; walked in {spent}."
    ]
    notes += [
        f"Reduced to fit the budget: step {c.step} {c.candidate} {c.setting} "
        f"{c.before} -> {c.after}."
        for c in ladder.reductions
    ]
    if ladder.stopped:
        notes.append(f"Stopped early: {ladder.stopped}.")
    checked = [
        f"step {p.step} {p.title} {seconds(p.estimated_seconds)} estimated, "
        f"{seconds(p.actual_seconds)} measured"
        for p in (ladder.plan.steps if ladder.plan else ())
        if p.estimated_seconds is not None and p.actual_seconds is not None
    ]
    if checked:
        notes.append("The plan's estimates against the compute each step recorded: "
                     + "; ".join(checked) + ".")  # fmt: skip
    return notes
