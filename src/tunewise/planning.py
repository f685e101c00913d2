"""`tunewise plan`: the plan `tunewise run` would start from, without measuring any candidate:
the same timing of the task's own examples (a few answers, a warm-up training sized to the
budget) and the same steps, the timing fitted to well under a minute. Its answers and warm-up
adapter land in the caches, so the run that follows reuses them."""

from __future__ import annotations

from tunewise.core.progress import Progress, SilentProgress
from tunewise.deciding.plan import LadderPlan
from tunewise.home import tunewise_home
from tunewise.inference.cache import ResponseCache
from tunewise.measuring.selection import ladder_settings
from tunewise.options import RunOptions
from tunewise.run import load_data, with_answer_budget
from tunewise.run_context import Backends, RunContext, plan_ladder
from tunewise.task.config import Task

PLAN_SECONDS = 40.0  # for the timing, model load included: the table within a minute


def plan_task(
    task: Task, options: RunOptions, progress: Progress | None = None, within: float = PLAN_SECONDS
) -> LadderPlan:
    """The timing and the planned steps of `tunewise run` with these options on this machine,
    the timing fitted to `within` seconds (a short warm-up, or none)."""
    dataset, test = load_data(task, options)
    task = with_answer_budget(task, dataset.train)
    cache = ResponseCache(tunewise_home() / "cache.sqlite")
    run = RunContext(
        task, options, dataset, test, Backends(task, options), cache,
        progress or SilentProgress(), knowledge=None, judge=None,
    )  # fmt: skip
    try:
        return plan_ladder(run, ladder_settings(task), within)
    finally:
        cache.close()
