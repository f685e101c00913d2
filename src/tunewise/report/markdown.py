"""report.md: the HTML report's content as Markdown tables and lists (the plots stay in HTML)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tunewise.report.content import CRITERIA, Report, Table, build_report
from tunewise.report.plots import plot_titles
from tunewise.report.risks import LANGUAGES_NOTE, REPAIR_NOTE
from tunewise.report.worst import ErrorExample
from tunewise.schemas.run_file import RunRecord, read_run

# Backslash-escaping these keeps dataset text and model output literal in any CommonMark viewer:
# `|` would split a table cell, `<` could open raw HTML or an autolink, backticks and `*` would
# start inline markup. A `]` right before `(` or `[` would close a link text: its follower is
# escaped instead of every bracket, so a CI such as [0.1, 0.3] stays readable.
_SPECIAL = re.compile(r"([\\`*<|])")
_LINK = re.compile(r"\]([(\[])")


def escape(text: str) -> str:
    """One line of literal text, safe inside a table cell or a list item."""
    text = _SPECIAL.sub(r"\\\1", " ".join(str(text).split()))
    return _LINK.sub(r"]\\\1", text)


def table(t: Table) -> list[str]:
    lines = ["| " + " | ".join(escape(h) or " " for h in t.headers) + " |"]
    lines.append("|" + "|".join(" --- " for _ in t.headers) + "|")
    lines += ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in t.rows]
    return [*lines, ""]


def render_markdown(
    results: Mapping[str, Any] | RunRecord, predictions: list[dict[str, Any]]
) -> str:
    """The whole report as Markdown."""
    run = read_run(results)
    report = build_report(run, predictions)
    lines = [f"# {escape(report.title)}", ""]
    lines += [f"- **{label}:** {escape(value)}" for label, value in report.facts]
    lines += ["", *_decision(report), *_ladder(report), *_plots(run, report)]
    lines += [*_candidates(report), *_confusions(report)]
    lines += _searches(report)
    if report.distillation:
        lines += ["## Distillation", "", report.distillation.note, ""]
        lines += [f"- {escape(line)}" for line in report.distillation.summaries]
        lines += ["", *table(report.distillation.table)]
    lines += [f"## {CRITERIA}", "", *table(report.seed)]
    if report.datasets:
        lines += ["## Across datasets", "", *table(report.datasets)]
    if report.freshness:
        lines += ["## Freshness", "", "Answers to the questions a document update changed.", ""]
        lines += table(report.freshness)
    if report.languages:
        lines += ["## Languages", "", LANGUAGES_NOTE, "", *table(report.languages)]
    if report.checks:
        lines += ["## Risk checks", "", *(f"- {escape(line)}" for line in report.checks), ""]
    if report.repair:
        lines += ["## Validation and repair", "", REPAIR_NOTE, ""]
        lines += table(report.repair)
    lines += ["## Worst errors", ""]
    for name, examples in report.errors:
        lines += [f"### {escape(name)}", ""]
        lines += [line for e in examples for line in _example(e)] or ["No errors.", ""]
    return "\n".join(lines).rstrip() + "\n"


def _decision(report: Report) -> list[str]:
    d = report.decision
    lines = ["## The decision", "", f"**Recommended: {escape(d.candidate or 'none yet')}**", ""]
    if d.closest:
        lines += [f"Closest: {escape(d.closest)}", ""]
    if d.next_step:
        lines += [f"**Next step:** {escape(d.next_step.action)}", ""]
        if d.next_step.command:
            lines += ["    " + d.next_step.command, ""]
    lines += [
        f"{d.headline} Step {d.step}, verdict **{d.verdict}**, metric {escape(d.metric)}.",
        "",
    ]
    if d.reasons:
        lines += ["Reasons:", "", *(f"- {escape(r)}" for r in d.reasons), ""]
    if d.gates.rows:
        lines += ["Gates:", "", *table(d.gates)]
    if d.alternatives:
        lines += ["Alternatives:", "", *(f"- {escape(a)}" for a in d.alternatives), ""]
    if d.changes:
        lines += ["What would change it:", "", *(f"- {escape(c)}" for c in d.changes), ""]
    return lines


def _ladder(report: Report) -> list[str]:
    if report.ladder is None:
        return []
    lines = ["## The ladder", "", *table(report.ladder)]
    return lines + [f"- {escape(note)}" for note in report.ladder_notes] + [""]


def _confusions(report: Report) -> list[str]:
    if not report.confusions:
        return []
    lines = ["## Where each candidate fails", ""]
    for c in report.confusions:
        lines += [f"### {escape(c.candidate)}", ""]
        if c.never_right:
            lines += [f"Never right on: {escape(', '.join(c.never_right))}.", ""]
        lines += [*table(c.matrix), *table(c.per_class)]
    return lines


def _plots(run: RunRecord, report: Report) -> list[str]:
    titles = plot_titles(run)
    lines = ["## Plots", ""]
    if titles:
        lines += [f"report.html has the plots: {', '.join(titles)}.", ""]
    else:
        lines += ["No data to plot.", ""]
    if report.learning_curve:
        lines += [f"Learning curve: {escape(report.learning_curve)}", ""]
    return lines


def _candidates(report: Report) -> list[str]:
    lines = [
        "## Candidates",
        "",
        "metric: value [95% CI] (bootstrap; the target metric of a candidate measured in "
        "rounds: anytime-valid) (n = test examples answered)",
        "",
    ]
    lines += table(report.candidates)
    if report.skipped:
        skipped = (f"- **{escape(name)}**: {escape(reason)}" for name, reason in report.skipped)
        lines += ["Skipped:", "", *skipped, ""]
    if report.break_even:
        lines += ["### Break-even", "", *table(report.break_even)]
    return lines


def _searches(report: Report) -> list[str]:
    if not report.searches:
        return []
    lines = ["## Prompt search", ""]
    for search in report.searches:
        lines += [f"### {escape(search.candidate)}", "", escape(search.summary), ""]
        lines += table(search.trace)
        # An indented block shows the prompt verbatim; no text inside can close it.
        lines += ["Winning prompt (system message):", ""]
        lines += ["    " + line for line in search.prompt.splitlines()]
        lines += ["", f"Demonstrations: {escape(search.demos)}", ""]
    return lines


def _example(e: ErrorExample) -> list[str]:
    lines = [
        f"- **{escape(e.example_id)}** ({e.score})",
        f"  - input: {escape(e.input)}",
        f"  - reference: {escape(e.reference)}",
        f"  - output: {escape(e.output)}",
    ]
    if e.invalid_reason:
        lines.append(f"  - invalid: {escape(e.invalid_reason)}")
    if e.sources:
        lines.append(f"  - sources: {escape(', '.join(e.sources))}")
    return [*lines, ""]
