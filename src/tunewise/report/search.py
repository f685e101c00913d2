"""The report's prompt-search section: each optimized-prompt candidate's trials with their score
on every rung of successive halving, and the prompt that won."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.report.cells import Table, seconds, shown
from tunewise.schemas.run_candidate import (
    CandidateRecord,
    ProposerRecord,
    SearchRecord,
    TrialRecord,
)

INSTRUCTION_CHARS = 90


@dataclass(frozen=True)
class PromptSearch:
    candidate: str
    summary: str
    trace: Table
    prompt: str  # the winner's system prompt
    demos: str  # the demonstrations that follow it


def prompt_searches(measured: list[CandidateRecord]) -> list[PromptSearch]:
    """One section per candidate whose setup holds a search record."""
    return [_section(c.name, c.setup.search) for c in measured if c.setup.search]


def _section(name: str, search: SearchRecord) -> PromptSearch:
    trials = search.trials
    winner = search.winner or TrialRecord()
    sizes = sorted({r.examples for t in trials for r in t.rungs})
    rows = []
    for t in trials:
        scores = {r.examples: r.score for r in t.rungs}
        mark = " (winner)" if t.trial == winner.trial else ""
        rows.append(
            [
                f"{t.trial}{mark}",
                shorten(t.instruction or ""),
                shown(t.demos),
                *(f"{scores[s]:.3f}" if s in scores else "-" for s in sizes),
            ]
        )
    headers = [
        "Trial",
        "Instruction",
        "Demos",
        *(f"{search.metric or 'score'} @ {s}" for s in sizes),
    ]
    return PromptSearch(
        name, _summary(search), Table(headers, rows), search.prompt or "", _demos(winner)
    )


def _summary(search: SearchRecord) -> str:
    winner = search.winner or TrialRecord()
    proposer = search.proposer or ProposerRecord()
    metric = search.metric or "score"
    won = "-" if winner.score is None else f"{winner.score:.3f}"
    return (
        f"{len(search.trials)} trials scored by successive halving on "
        f"{shown(search.validation_examples)} validation examples drawn from train (demo "
        f"pool: {shown(search.pool_examples)} examples; the test split is never seen). "
        f"Instructions: the contract's objective plus {shown(proposer.kept, '0')} of "
        f"{shown(proposer.asked, '0')} written by {shown(proposer.model)}. "
        f"Winner: trial {shown(winner.trial)}, {metric} {won} on "
        f"{shown(winner.examples)} validation examples. The search made "
        f"{shown(search.requests)} requests ({shown(search.calls)} answered in this "
        f"run, the rest from the cache), {seconds(search.seconds)} of compute, counted "
        "as the candidate's setup."
    )


def _demos(winner: TrialRecord) -> str:
    name = shown(winner.demos)
    if winner.demo_ids is None:
        return f"{name}: the nearest training examples to each input (BM25), chosen per request"
    return f"{name}: {', '.join(winner.demo_ids) or 'none'}"


def shorten(text: str, limit: int = INSTRUCTION_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
