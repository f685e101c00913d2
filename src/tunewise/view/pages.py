"""What the viewer's pages show, as plain data built from ledger rows and run folders.

Nothing here escapes anything (the templates autoescape), and nothing here raises for a run
folder that is gone or damaged: the page data carries the problem in words instead, so the
page can say it. The runs table reads the ledger only, plus the folders of the rows it shows.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from tunewise.errors import TunewiseError
from tunewise.records import compare
from tunewise.records.compare import ALPHA, Flip, diff_runs
from tunewise.records.ledger import LedgerRun
from tunewise.report import read_predictions
from tunewise.report.cells import Table, metric_cell
from tunewise.report.content import HEADLINES, Report, build_report
from tunewise.report.plots import Plot, render_plots
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import RunRecord, read_run

PER_PAGE = 100
SHOWN_FLIPS = 100  # per kind and candidate; the counts are always complete


@dataclass(frozen=True)
class Filters:
    """The runs page's query: a search string and exact task, candidate and metric names."""

    q: str = ""
    task: str = ""
    candidate: str = ""
    metric: str = ""
    page: int = 1

    def query(self, **changes: Any) -> str:
        """The query string of these filters with `changes` (empty values left out)."""
        values = {**asdict(self), **changes}
        kept = {k: v for k, v in values.items() if v and not (k == "page" and v == 1)}
        return urlencode(kept)


@dataclass(frozen=True)
class Folder:
    """A run folder's results.json, or why there is none."""

    run: RunRecord | None
    problem: str | None


def read_folder(folder: str) -> Folder:
    path = Path(folder)
    if not path.is_dir():
        return Folder(None, f"The run folder {folder} is gone (moved or deleted).")
    if not (path / "results.json").is_file():
        return Folder(None, f"The run folder {folder} has no results.json any more.")
    try:
        return Folder(read_run(path), None)
    except TunewiseError as exc:
        return Folder(None, f"The run's results.json cannot be read: {exc}")


@dataclass(frozen=True)
class Score:
    candidate: str
    text: str  # "0.833 [0.500, 1.000]", or why there is no value


@dataclass(frozen=True)
class RunRow:
    run_id: str
    task: str
    created: str
    approved: bool
    folder: str
    problem: str | None
    recommendation: str
    metric: str
    scores: list[Score]


@dataclass(frozen=True)
class RunsPage:
    rows: list[RunRow]
    filters: Filters
    matched: int
    recorded: int
    pages: int
    tasks: list[str]
    candidates: list[str]
    metrics: list[str]


def runs_page(runs: list[LedgerRun], filters: Filters) -> RunsPage:
    """The runs that match `filters`, newest first, one page of them read from their folders."""
    found = [run for run in runs if _matches(run, filters)]
    pages = max(1, -(-len(found) // PER_PAGE))
    page = min(max(filters.page, 1), pages)
    shown = found[(page - 1) * PER_PAGE : page * PER_PAGE]
    every = [c for run in runs for c in run.candidate_records()]
    return RunsPage(
        rows=[_row(run, filters) for run in shown],
        filters=Filters(filters.q, filters.task, filters.candidate, filters.metric, page),
        matched=len(found),
        recorded=len(runs),
        pages=pages,
        tasks=sorted({run.task_name for run in runs}),
        candidates=sorted({c.name for c in every}),
        metrics=sorted({m for c in every for m in c.metrics}),
    )


def _matches(run: LedgerRun, f: Filters) -> bool:
    candidates = _shown_candidates(run, f)
    if f.task and run.task_name != f.task:
        return False
    if f.candidate and not candidates:
        return False
    if f.metric and not any(f.metric in c.metrics for c in candidates):
        return False
    if f.q:
        words = [run.run_id, run.task_name, run.folder, run.created_at]
        words += [value or "" for c in candidates for value in (c.name, c.strategy, c.model)]
        return f.q.casefold() in " ".join(words).casefold()
    return True


def _shown_candidates(run: LedgerRun, f: Filters) -> list[CandidateRecord]:
    return [c for c in run.candidate_records() if not f.candidate or c.name == f.candidate]


def _row(run: LedgerRun, f: Filters) -> RunRow:
    folder = read_folder(run.folder)
    order = [c.name for c in folder.run.candidates] if folder.run else []  # the run's own order
    candidates = sorted(
        _shown_candidates(run, f),
        key=lambda c: order.index(c.name) if c.name in order else len(order),
    )
    measured = [m for c in candidates for m in c.metrics]
    primary = folder.run.primary_metric() if folder.run else None
    metric = f.metric or primary or (measured[0] if measured else "")
    scores = [Score(c.name, _score(c, metric)) for c in candidates]
    return RunRow(
        run_id=run.run_id,
        task=run.task_name,
        created=run.created_at[:19].replace("T", " "),
        approved=run.approved,
        folder=run.folder,
        problem=folder.problem,
        recommendation=_recommendation(folder.run) if folder.run else "folder missing",
        metric=metric,
        scores=scores,
    )


def _score(candidate: CandidateRecord, metric: str) -> str:
    value = candidate.metrics.get(metric)
    if value is None:
        return "-" if candidate.status == "measured" else str(candidate.status)
    return f"{value.value:.3f} [{value.ci_low:.3f}, {value.ci_high:.3f}]"


def _recommendation(run: RunRecord) -> str:
    rec = run.recommendation
    if rec is not None and rec.candidate:
        step = rec.step
        return f"{rec.candidate} (step {step})" if step is not None else rec.candidate
    verdict = rec.verdict if rec else None
    return f"none: {HEADLINES.get(verdict or '', verdict or 'no decision')}"


@dataclass(frozen=True)
class RunPage:
    run: LedgerRun
    problem: str | None
    report: Report | None
    plots: list[Plot]
    has_report_html: bool
    ledger_table: Table  # what the ledger kept, shown when the folder cannot be read
    others: list[LedgerRun] = field(default_factory=list)  # runs of the same task, to diff with


def run_page(run: LedgerRun, all_runs: list[LedgerRun]) -> RunPage:
    others = [r for r in all_runs if r.task_name == run.task_name and r.run_id != run.run_id]
    ledger_table = _ledger_table(run)
    folder = read_folder(run.folder)
    if folder.run is None:
        return RunPage(run, folder.problem, None, [], False, ledger_table, others)
    try:
        predictions = read_predictions(Path(run.folder) / "predictions.jsonl")
        report = build_report(folder.run, predictions)
        plots = render_plots(folder.run)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problem = f"The files in {run.folder} cannot be shown by this version ({exc!r})."
        return RunPage(run, problem, None, [], False, ledger_table, others)
    has_html = (Path(run.folder) / "report.html").is_file()
    return RunPage(run, None, report, plots, has_html, ledger_table, others)


def _ledger_table(run: LedgerRun) -> Table:
    candidates = run.candidate_records()
    metrics = list(dict.fromkeys(m for c in candidates for m in c.metrics))
    rows = [
        [c.name, c.strategy, str(c.model), str(c.status),
         *(metric_cell(c.metrics.get(m)) for m in metrics)]
        for c in candidates
    ]  # fmt: skip
    return Table(["candidate", "strategy", "model", "status", *metrics], rows)


@dataclass(frozen=True)
class MetricChange:
    metric: str
    a: str
    b: str
    delta: str
    ci: str
    test: str
    p_value: str
    verdict: str  # "higher" | "lower" | "within noise"


@dataclass(frozen=True)
class CandidateChanges:
    candidate: str
    shared_examples: int
    changes: list[str]
    metrics: list[MetricChange]
    fixed: list[Flip]
    broken: list[Flip]
    fixed_total: int
    broken_total: int


@dataclass(frozen=True)
class DiffPage:
    a: LedgerRun
    b: LedgerRun
    candidate: str
    problem: str | None
    candidates: list[CandidateChanges]
    folder_missing: bool = False


def diff_page(a: LedgerRun, b: LedgerRun, candidate: str = "") -> DiffPage:
    """A -> B for every candidate both measured (or just `candidate`), via records.compare."""
    for run in (a, b):
        problem = read_folder(run.folder).problem
        if problem:
            return DiffPage(a, b, candidate, f"Run {run.run_id}: {problem}", [], True)
    try:
        files = compare.read_run(Path(a.folder)), compare.read_run(Path(b.folder))
        diffs = diff_runs(*files, candidate or None)
    except TunewiseError as exc:
        return DiffPage(a, b, candidate, str(exc), [])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return DiffPage(a, b, candidate, f"These runs cannot be compared ({exc!r}).", [])
    shown = []
    for d in diffs:
        fixed = [f for f in d.flips if f.direction == "fixed"]
        broken = [f for f in d.flips if f.direction == "broken"]
        metrics = [
            MetricChange(
                name, f"{t.a:.3f}", f"{t.b:.3f}", f"{t.delta:+.3f}",
                f"{t.ci_low:+.3f} to {t.ci_high:+.3f}", t.test, f"{t.p_value:.3g}",
                ("higher" if t.delta > 0 else "lower") if t.p_value < ALPHA else "within noise",
            )
            for name, t in d.metrics.items()
        ]  # fmt: skip
        shown.append(
            CandidateChanges(
                d.candidate, d.shared_examples, d.changes, metrics,
                fixed[:SHOWN_FLIPS], broken[:SHOWN_FLIPS], len(fixed), len(broken),
            )
        )  # fmt: skip
    return DiffPage(a, b, candidate, None, shown)
