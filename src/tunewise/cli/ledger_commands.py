"""The ledger's commands: list recorded runs, compare two, gate a run against a baseline, and
approve a baseline."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from tunewise.cli.terminal import console, errors, user_errors
from tunewise.errors import TunewiseError


def record_run(folder: Path) -> None:
    """Add a written run to the ledger; a ledger problem warns but never loses the run."""
    from tunewise.records.ledger import Ledger

    try:
        with Ledger() as ledger:
            ledger.record(folder)
    except Exception as exc:  # the run folder is complete either way
        errors.print(f"warning: the run was not recorded in the ledger ({exc})")


def runs(
    task: Annotated[str | None, typer.Option(help="Only runs of this task (its name).")] = None,
    candidate: Annotated[str | None, typer.Option(help="Only runs with this candidate.")] = None,
) -> None:
    """List the runs recorded in the ledger, newest first."""
    with user_errors(False):
        from tunewise.records.ledger import Ledger

        with Ledger() as ledger:
            found = ledger.runs(task, candidate)
        if not found:
            console.print("no runs recorded yet; `tunewise run` records each run")
        for run in found:  # one line per run, so it greps and pipes well
            mark = " [approved]" if run.approved else ""
            described = "; ".join(_brief(c) for c in run.candidates)
            line = f"{run.run_id}  {run.created_at[:19]}{mark}  {described}  {run.folder}"
            console.print(line, markup=False, soft_wrap=True)


def _brief(candidate: dict[str, Any]) -> str:
    metrics = candidate["metrics"]
    if not metrics:
        return f"{candidate['name']} ({candidate['status']})"
    name, value = next(iter(metrics.items()))
    return f"{candidate['name']} {name} {value['value']:.3f}"


def diff(
    run_a: Annotated[str, typer.Argument(help="The earlier run: a folder or a run id.")],
    run_b: Annotated[str, typer.Argument(help="The later run: a folder or a run id.")],
    candidate: Annotated[str | None, typer.Option(help="Compare only this candidate.")] = None,
    show: Annotated[int, typer.Option(min=0, help="Flipped examples to list per kind.")] = 10,
) -> None:
    """Per-metric changes between two runs with paired significance, the examples that flipped,
    and what changed (model, prompt, data, adapter, code)."""
    with user_errors(False):
        from tunewise.records.compare import diff_runs, read_run
        from tunewise.records.ledger import Ledger

        with Ledger() as ledger:
            a, b = read_run(ledger.resolve(run_a)), read_run(ledger.resolve(run_b))
        for d in diff_runs(a, b, candidate):
            console.print(f"[bold]{d.candidate}[/] ({d.shared_examples} shared test examples)")
            for change in d.changes or ["nothing recorded changed"]:
                console.print(f"  changed: {change}", markup=False)
            for metric, t in d.metrics.items():
                console.print(
                    f"  {metric}: {t.a:.3f} -> {t.b:.3f} ({t.delta:+.3f}, 95% CI "
                    f"{t.ci_low:+.3f} to {t.ci_high:+.3f}; {t.test} p={t.p_value:.3g})"
                )
            for kind in ("fixed", "broken"):
                flips = [f for f in d.flips if f.direction == kind]
                console.print(f"  {kind}: {len(flips)}")
                for f in flips[:show]:
                    console.print(
                        f"    {f.example_id}: {f.input[:80]!r} expected {f.reference[:40]!r}, "
                        f"{f.output_a[:40]!r} -> {f.output_b[:40]!r}",
                        markup=False,
                    )


def gate(
    run: Annotated[str, typer.Argument(help="The run to check: a folder or a run id.")],
    baseline: Annotated[
        str | None, typer.Option(help="The run to compare against (folder or run id).")
    ] = None,
    approved: Annotated[
        bool, typer.Option("--approved", help="Compare against the task's approved run.")
    ] = False,
    max_drop: Annotated[float, typer.Option(min=0.0, help="Largest tolerated drop.")] = 0.01,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0, help="Significance level.")] = 0.05,
    candidate: Annotated[str | None, typer.Option(help="Check only this candidate.")] = None,
    report_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|junit|json|github",
            help="Report as text, JUnit XML, one JSON document or GitHub Actions commands.",
        ),
    ] = "text",
    output: Annotated[
        Path | None,
        typer.Option(help="Write the report to this file; the text goes to the terminal."),
    ] = None,
) -> None:
    """Exit 1 when a metric dropped by more than --max-drop and the drop is significant."""
    with user_errors(False):
        from tunewise.records.compare import diff_runs, read_run
        from tunewise.records.compare import gate as check
        from tunewise.records.gate_formats import GateReport, check_format, render
        from tunewise.records.ledger import Ledger

        check_format(report_format)
        if (baseline is None) == (not approved):
            raise TunewiseError("give exactly one of --baseline RUN or --approved")
        with Ledger() as ledger:
            current = read_run(ledger.resolve(run))
            base_folder = (
                ledger.approved(str(current.results.task.name))
                if approved
                else ledger.resolve(str(baseline))
            )
        base = read_run(base_folder)
        diffs = diff_runs(base, current, candidate)
        result = check(diffs, max_drop, alpha)
        task = str(current.results.task.name)
        report = GateReport(task, base.run_id, current.run_id, diffs, result)
        # The text always reaches the terminal: on stdout, or on stderr while stdout carries
        # a machine-read report.
        terminal = console if output is not None or report_format == "text" else errors
        for line in render(report, "text").splitlines():
            terminal.print(line, markup=False)
        if output is not None:
            _write_atomic(output, render(report, report_format))
        elif report_format != "text":
            sys.stdout.write(render(report, report_format))
            sys.stdout.flush()
    if not result.passed:  # outside: _user_errors treats any other exit as an internal error
        raise typer.Exit(1)


def _write_atomic(path: Path, text: str) -> None:
    """The report file is the old one or the whole new one, never half of one."""
    if not path.parent.is_dir():
        raise TunewiseError(f"--output {path}: the folder {path.parent} does not exist")
    temporary = None
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the report from a CI uploader
        os.replace(temporary, path)
    except OSError as exc:
        raise TunewiseError(f"--output {path}: cannot write it ({exc.strerror})") from None
    finally:
        if temporary is not None:  # gone after the rename; left over only if it failed
            Path(temporary).unlink(missing_ok=True)


def approve(run: Annotated[str, typer.Argument(help="A run folder or run id.")]) -> None:
    """Mark a run as its task's approved baseline (for `tunewise gate --approved`)."""
    with user_errors(False):
        from tunewise.records.ledger import Ledger

        with Ledger() as ledger:
            run_id = ledger.approve(ledger.resolve(run))
        console.print(f"approved {run_id}")


def register(app: typer.Typer) -> None:
    """Add the ledger's commands to the command line."""
    from tunewise.cli.view_command import view

    app.command()(runs)
    app.command()(view)
    app.command()(diff)
    app.command()(gate)
    app.command()(approve)
