"""Which candidates a run measures: the pinned ones (--strategies, or the task's candidates), or
the ladder's, each with the task's settings of its strategy, else that strategy's defaults."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from tunewise.core.catalog import default_candidate, names_where, strategy_named
from tunewise.core.specs import CandidateSpec
from tunewise.errors import TunewiseError
from tunewise.options import RunOptions
from tunewise.task.config import Task


def pinned(task: Task, options: RunOptions) -> bool:
    """Whether the run measures exactly what --strategies or the task's candidates name; else
    it walks the ladder."""
    return bool(options.strategies) or any(not getattr(c, "opt_in", False) for c in task.candidates)


def candidate_specs(task: Task, options: RunOptions) -> list[CandidateSpec]:
    """The task's pinned candidates, or those of --strategies (the task's settings of each,
    else its defaults); the ladder's steps choose their own (see ladder_settings)."""
    wanted = options.strategies
    if not wanted:
        return [c for c in task.candidates if not getattr(c, "opt_in", False)]
    for strategy in wanted:
        strategy_named(strategy)  # an unknown name fails here, listing the known ones
    # Each wanted strategy: the task's candidates of that strategy, else its defaults.
    retrieving = names_where(retrieves=True).intersection(wanted)
    if task.data.documents is None and retrieving:
        raise TunewiseError(
            f"strategy '{sorted(retrieving)[0]}' retrieves from documents; "
            "set data.documents in task.yaml to a folder or JSONL of documents"
        )
    specs: list[CandidateSpec] = []
    for strategy in dict.fromkeys(wanted):
        listed = [c for c in task.candidates if c.strategy == strategy]
        specs.extend(listed or [default_candidate(strategy)])
    return specs


def ladder_settings(task: Task) -> Callable[[str], CandidateSpec]:
    """A ladder step's candidate: the task's (opt-in) candidate of that strategy, else defaults."""

    def settings(strategy: str) -> CandidateSpec:
        listed = [c for c in task.candidates if c.strategy == strategy]
        return listed[0] if listed else default_candidate(strategy)

    return settings


def suggested_command(options: RunOptions, strategies: str, **flags: str) -> str:
    """The command that measures `strategies` with this run's other flags (`flags` override
    them: model, limit, learning_curve)."""
    given = {"model": options.model, "limit": options.limit}
    given |= {"dtype": options.dtype if options.dtype != "auto" else None}
    parts = [f"tunewise run {options.task_file} --strategies {strategies}"]
    for flag, value in (given | flags).items():
        if value is not None:
            parts.append(f"--{flag.replace('_', '-')} {value}")
    return " ".join(parts)


def model_for(spec: CandidateSpec, task: Task, options: RunOptions) -> str:
    """The candidate's own model, else --model, else the task's."""
    return spec.model or options.model or task.model


def candidate_names(specs: Sequence[CandidateSpec]) -> list[str]:
    names = [spec.name or spec.strategy for spec in specs]
    seen: dict[str, int] = {}
    unique = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique
