"""The tunewise command line: a thin layer over the library's entry points."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tunewise import __version__
from tunewise.errors import TunewiseError
from tunewise.summary import render_table

app = typer.Typer(
    help="Measure whether to prompt, add RAG, fine-tune, or combine them, on your own task.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
errors = Console(stderr=True)


def _quiet_libraries(verbose: bool) -> None:
    """Keep third-party chatter (download bars, deprecation notes) out of the user's terminal."""
    if not verbose:
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("TQDM_DISABLE", "1")
        warnings.filterwarnings("ignore")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=errors, show_path=False, show_time=False)],
    )
    for noisy in ("httpx", "urllib3", "filelock", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


@contextmanager
def _user_errors(verbose: bool) -> Iterator[None]:
    """Bad input: one line on stderr and exit code 2. Anything else: a short note, exit 1."""
    try:
        yield
    except TunewiseError as exc:
        # The message quotes user data; print it as literal text, never as rich markup.
        errors.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        errors.print("interrupted; finished answers are cached, re-run the command to resume")
        raise typer.Exit(130) from None
    except Exception as exc:
        if verbose:
            raise
        note = f" {type(exc).__name__}: {exc} (re-run with --verbose for the traceback)"
        errors.print(Text.assemble(("internal error:", "bold red"), note), soft_wrap=True)
        raise typer.Exit(1) from None


class BarProgress:
    """The library's Progress protocol, drawn with rich progress bars and an ETA."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress

    def stage(self, description: str, total: int) -> Callable[[int], None]:
        task_id = self._progress.add_task(description, total=total)
        return lambda n: self._progress.advance(task_id, n)


def _bars() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description:<16}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=errors,
        transient=False,
    )


def _sizes(value: str | None) -> tuple[int, ...] | None:
    parts = _split_csv(value)
    if parts is None:
        return None
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise TunewiseError(f"--learning-curve takes positive sizes like 100,250,500; got {value}")
    return tuple(int(part) for part in parts)


def _split_csv(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


_DTYPE = typer.Option(
    help="Local models' inference dtype: auto (bfloat16 on a bf16-capable GPU or a CPU with AMX "
    "or AVX-512 BF16, else float32), float32 or bfloat16."
)


@app.command()
def run(
    task_file: Annotated[Path, typer.Argument(help="The task.yaml to measure.")],
    strategies: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated strategies to run: zero-shot, few-shot, optimized-prompt, rag, "
            "lora, qlora, hybrid. Default: the task's candidates, else zero-shot,few-shot "
            "(+rag with documents)."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model spec for candidates without one (overrides task.yaml)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder that receives runs/<run-id>/.")] = Path("runs"),
    limit: Annotated[
        int | None, typer.Option(min=1, help="Evaluate a seeded, stratified N test examples.")
    ] = None,
    strict: Annotated[
        bool, typer.Option(help="Fail when test inputs also appear in train.")
    ] = False,
    learning_curve: Annotated[
        str | None,
        typer.Option(help="Train the lora candidate on these sizes too, e.g. 100,250,500."),
    ] = None,
    dtype: Annotated[str, _DTYPE] = "auto",
    repeats: Annotated[
        int,
        typer.Option(
            min=0, help="Sample each answer N more times (temperature 0.7) to measure flakiness."
        ),
    ] = 0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Measure every candidate on the same held-out examples, then recommend one."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        from tunewise.results import write_run
        from tunewise.run import RunOptions, run_task
        from tunewise.task import load_task

        task = load_task(task_file)
        sizes = _sizes(learning_curve)
        options = RunOptions(_split_csv(strategies), model, limit, strict, sizes, dtype, repeats)
        with _bars() as bars:
            result = run_task(task, options, BarProgress(bars))
        if result.dataset.leaked:
            errors.print(
                f"warning: {len(result.dataset.leaked)} test inputs also appear in train "
                "(use --strict to make this an error)"
            )
        folder = write_run(result, out)
        _record(folder)
        document = json.loads((folder / "results.json").read_text())
        console.print(render_table(document))
        console.print(
            f"results: {folder / 'results.json'}\npredictions: {folder / 'predictions.jsonl'}\n"
            f"report: {folder / 'report.html'} (and report.md)"
        )


@app.command()
def check(
    task_file: Annotated[Path, typer.Argument(help="The task.yaml to check.")],
    out: Annotated[
        Path | None, typer.Option(help="Also write the findings to this JSON file.")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model spec for candidates without one (overrides task.yaml)."),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Look for risks in the task's inputs before measuring: inputs over the context window or
    unusually token-heavy, invisible and control characters, special-token strings (with proof
    they cannot end the prompt), and the language mix of train vs test. Findings are warnings:
    exits 0 when the checks ran."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        from tunewise.checks import check_task, write_findings
        from tunewise.checks.summary import render_summary
        from tunewise.task import load_task

        task = load_task(task_file)
        with errors.status("loading tokenizers and the language detector"):
            findings = check_task(task, model=model)
        console.print(render_summary(findings))
        if out is not None:
            console.print(f"findings: {write_findings(findings, out)}", markup=False)


@app.command()
def train(
    task_file: Annotated[Path, typer.Argument(help="The task.yaml whose adapters to train.")],
    strategies: Annotated[
        str,
        typer.Option(
            help="Fine-tuning strategies to train: lora, qlora, hybrid (comma-separated)."
        ),
    ] = "lora",
    model: Annotated[str | None, typer.Option(help="Model spec (overrides task.yaml).")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Train the task's adapters into the cache, without evaluating.

    Runs under `accelerate launch -m tunewise train ...` on several GPUs; a later
    `tunewise run` reuses the adapters."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        from tunewise.run import RunOptions, train_only
        from tunewise.task import load_task

        task = load_task(task_file)
        options = RunOptions(_split_csv(strategies), model)
        with _bars() as bars:
            trained = train_only(task, options, BarProgress(bars))
        for name, folder in trained:
            console.print(f"{name}: adapter in {folder}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    candidate: Annotated[str, typer.Option(help="The fine-tuned candidate to export.")],
    format: Annotated[
        str, typer.Option("--format", help="adapter | merged | openai-jsonl")
    ] = "adapter",
    out: Annotated[
        Path | None, typer.Option(help="Folder to create (default RUN_DIR/exports/NAME-FORMAT).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Export a fine-tuned candidate: its adapter, a merged model, or its data as OpenAI JSONL."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        from tunewise.export import export as export_candidate

        formats = ("adapter", "merged", "openai-jsonl")
        if format not in formats:
            raise TunewiseError(f"unknown --format '{format}'; use one of {', '.join(formats)}")
        target = out or run_dir / "exports" / f"{candidate}-{format}"
        folder = export_candidate(run_dir, candidate, format, target)  # type: ignore[arg-type]
        console.print(f"exported {candidate} as {format}: {folder}")


@app.command()
def serve(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    candidate: Annotated[str, typer.Option(help="The candidate to serve, by its name.")],
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer <key>' with the key in this variable."),
    ] = None,
    max_request_bytes: Annotated[int, typer.Option(min=1)] = 1_000_000,
    max_input_chars: Annotated[int, typer.Option(min=1)] = 32_000,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve a measured candidate as an OpenAI-compatible endpoint (/v1/chat/completions,
    /v1/models, /health)."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        import uvicorn

        from tunewise.serve import create_app, load_candidate

        api_key = None
        if api_key_env is not None:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise TunewiseError(f"--api-key-env {api_key_env}: the variable is not set")
        served = load_candidate(run_dir, candidate)
        app_ = create_app(
            served,
            api_key=api_key,
            max_request_bytes=max_request_bytes,
            max_input_chars=max_input_chars,
        )
        errors.print(f"serving '{candidate}' on http://{host}:{port}/v1 (Ctrl-C stops)")
        uvicorn.run(app_, host=host, port=port, log_level="info" if verbose else "warning")


def _record(folder: Path) -> None:
    """Add a written run to the ledger; a ledger problem warns but never loses the run."""
    from tunewise.ledger import Ledger

    try:
        with Ledger() as ledger:
            ledger.record(folder)
    except Exception as exc:  # the run folder is complete either way
        errors.print(f"warning: the run was not recorded in the ledger ({exc})")


@app.command()
def runs(
    task: Annotated[str | None, typer.Option(help="Only runs of this task (its name).")] = None,
    candidate: Annotated[str | None, typer.Option(help="Only runs with this candidate.")] = None,
) -> None:
    """List the runs recorded in the ledger, newest first."""
    with _user_errors(False):
        from tunewise.ledger import Ledger

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


@app.command()
def diff(
    run_a: Annotated[str, typer.Argument(help="The earlier run: a folder or a run id.")],
    run_b: Annotated[str, typer.Argument(help="The later run: a folder or a run id.")],
    candidate: Annotated[str | None, typer.Option(help="Compare only this candidate.")] = None,
    show: Annotated[int, typer.Option(min=0, help="Flipped examples to list per kind.")] = 10,
) -> None:
    """Per-metric changes between two runs with paired significance, the examples that flipped,
    and what changed (model, prompt, data, adapter, code)."""
    with _user_errors(False):
        from tunewise.compare import diff_runs, read_run
        from tunewise.ledger import Ledger

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


@app.command()
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
) -> None:
    """Exit 1 when a metric dropped by more than --max-drop and the drop is significant."""
    with _user_errors(False):
        from tunewise.compare import diff_runs, read_run
        from tunewise.compare import gate as check
        from tunewise.ledger import Ledger

        if (baseline is None) == (not approved):
            raise TunewiseError("give exactly one of --baseline RUN or --approved")
        with Ledger() as ledger:
            current = read_run(ledger.resolve(run))
            base_folder = (
                ledger.approved(current.results["task"]["name"])
                if approved
                else ledger.resolve(str(baseline))
            )
        base = read_run(base_folder)
        result = check(diff_runs(base, current, candidate), max_drop, alpha)
        console.print(f"baseline {base.run_id} -> {current.run_id}", markup=False)
        for line in result.lines:
            console.print(line, markup=False)
    if not result.passed:  # outside: _user_errors treats any other exit as an internal error
        raise typer.Exit(1)


@app.command()
def approve(run: Annotated[str, typer.Argument(help="A run folder or run id.")]) -> None:
    """Mark a run as its task's approved baseline (for `tunewise gate --approved`)."""
    with _user_errors(False):
        from tunewise.ledger import Ledger

        with Ledger() as ledger:
            run_id = ledger.approve(ledger.resolve(run))
        console.print(f"approved {run_id}")


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Show a finished run's table and recommendation again, and (re)write its report.html and
    report.md."""
    _quiet_libraries(verbose)
    with _user_errors(verbose):
        from tunewise.report import write_report

        document = _read_results(run_dir)
        console.print(render_table(document))
        html, markdown = write_report(run_dir)
        console.print(f"report: {html} (and {markdown.name})")


def _read_results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise TunewiseError(f"{path}: no such file; pass a runs/<run-id> folder") from None
    except json.JSONDecodeError as exc:
        raise TunewiseError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None


@app.command()
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file instead of stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of task.yaml (for editors and validation)."""
    from tunewise.task import task_schema

    text = json.dumps(task_schema(), indent=2) + "\n"
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")


def _version(value: bool) -> None:
    if value:
        console.print(f"tunewise {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """tunewise: prompt, RAG, fine-tune, or hybrid? Measured on your task."""
