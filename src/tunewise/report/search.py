"""The report's prompt-search section: each optimized-prompt candidate's trials with their score
on every rung of successive halving, and the prompt that won."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tunewise.report.cells import Table, seconds

INSTRUCTION_CHARS = 90


@dataclass(frozen=True)
class PromptSearch:
    candidate: str
    summary: str
    trace: Table
    prompt: str  # the winner's system prompt
    demos: str  # the demonstrations that follow it


def prompt_searches(measured: list[dict[str, Any]]) -> list[PromptSearch]:
    """One section per candidate whose setup holds a search record."""
    return [
        _section(c["name"], c["setup"]["search"])
        for c in measured
        if (c.get("setup") or {}).get("search")
    ]


def _section(name: str, search: dict[str, Any]) -> PromptSearch:
    trials = search.get("trials", [])
    winner = search.get("winner") or {}
    sizes = sorted({r["examples"] for t in trials for r in t.get("rungs", [])})
    rows = []
    for t in trials:
        scores = {r["examples"]: r["score"] for r in t.get("rungs", [])}
        mark = " (winner)" if t.get("trial") == winner.get("trial") else ""
        rows.append(
            [
                f"{t.get('trial')}{mark}",
                shorten(t.get("instruction", "")),
                t.get("demos", "?"),
                *(f"{scores[s]:.3f}" if s in scores else "-" for s in sizes),
            ]
        )
    headers = [
        "Trial",
        "Instruction",
        "Demos",
        *(f"{search.get('metric', 'score')} @ {s}" for s in sizes),
    ]
    return PromptSearch(
        name, _summary(search), Table(headers, rows), search.get("prompt", ""), _demos(winner)
    )


def _summary(search: dict[str, Any]) -> str:
    winner = search.get("winner") or {}
    proposer = search.get("proposer") or {}
    metric = search.get("metric", "score")
    score = winner.get("score")
    won = "-" if score is None else f"{score:.3f}"
    return (
        f"{len(search.get('trials', []))} trials scored by successive halving on "
        f"{search.get('validation_examples', '?')} validation examples drawn from train (demo "
        f"pool: {search.get('pool_examples', '?')} examples; the test split is never seen). "
        f"Instructions: the contract's objective plus {proposer.get('kept', 0)} of "
        f"{proposer.get('asked', 0)} written by {proposer.get('model', '?')}. "
        f"Winner: trial {winner.get('trial', '?')}, {metric} {won} on "
        f"{winner.get('examples', '?')} validation examples. The search made "
        f"{search.get('requests', '?')} requests ({search.get('calls', '?')} answered in this "
        f"run, the rest from the cache), {seconds(search.get('seconds'))} of compute, counted "
        "as the candidate's setup."
    )


def _demos(winner: dict[str, Any]) -> str:
    name = winner.get("demos", "?")
    ids = winner.get("demo_ids")
    if ids is None:
        return f"{name}: the nearest training examples to each input (BM25), chosen per request"
    return f"{name}: {', '.join(ids) or 'none'}"


def shorten(text: str, limit: int = INSTRUCTION_CHARS) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
