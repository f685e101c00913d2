"""The tunewise command line: a thin layer over the library's entry points."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from tunewise.cli.bars import BarProgress, progress_bars
from tunewise.cli.fine_tuning_command import fine_tuning_server
from tunewise.cli.ledger_commands import record_run, register
from tunewise.cli.plan_command import plan
from tunewise.cli.run_summary import render_table
from tunewise.cli.terminal import api_key_from, console, errors, quiet_libraries, user_errors
from tunewise.cli.tracking_commands import LOG_HELP, log_written, trackers
from tunewise.cli.tracking_commands import register as register_tracking
from tunewise.cli.training_flags import AccelerateConfig, TrainProcesses, load_with_training
from tunewise.core.budget import DEFAULT_BUDGET, parse_budget
from tunewise.core.catalog import declared_names, first_in_ladder, strategies
from tunewise.core.version import __version__
from tunewise.errors import TunewiseError
from tunewise.options import RunOptions

if TYPE_CHECKING:
    from tunewise.run import RunResult

app = typer.Typer(
    help="Measure whether to prompt, add RAG, fine-tune, or combine them, on your own task.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _sizes(value: str | None) -> tuple[int, ...] | None:
    parts = _split_csv(value)
    if parts is None:
        return None
    if not all(part.isdigit() and int(part) > 0 for part in parts):
        raise TunewiseError(f"--learning-curve takes positive sizes like 100,250,500; got {value}")
    return tuple(int(part) for part in parts)


def _limit(value: str | None) -> int | Literal["all"] | None:
    if value is None:
        return None
    if value == "all":
        return "all"
    if not value.isdigit() or int(value) < 1:
        raise TunewiseError(f"--limit takes a positive number of test examples or all; got {value}")
    return int(value)


def _split_csv(value: str | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return tuple(part.strip() for part in value.split(",") if part.strip())


_DTYPE = typer.Option(
    help="Local models' dtype, for answers and fine-tuning: auto (bfloat16 on a bf16-capable GPU "
    "or a CPU with AMX, else float32), float32 or bfloat16."
)


def _listed(**flags: bool) -> str:
    """The registered strategies' names for the help (a plugin that fails to load is reported
    when a command runs, not here)."""
    try:
        known = strategies()
    except TunewiseError:
        return ", ".join(declared_names())
    return ", ".join(
        n for n, s in known.items() if all(getattr(s, f) == v for f, v in flags.items())
    )


@app.command()
def run(
    task_file: Annotated[Path, typer.Argument(help="The task.yaml to measure.")],
    strategies: Annotated[
        str | None,
        typer.Option(
            help=f"Comma-separated strategies to run: {_listed()}. Default: the task's "
            "candidates, else the ladder: the four steps in order, each while the gap stays "
            "open, within --budget."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(help="Model spec for candidates without one (overrides task.yaml)."),
    ] = None,
    out: Annotated[Path, typer.Option(help="Folder that receives runs/<run-id>/.")] = Path("runs"),
    limit: Annotated[
        str | None,
        typer.Option(
            help="Evaluate a seeded, stratified N test examples, or all of them (overrides the "
            "task's data.test_sample)."
        ),
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
    budget: Annotated[
        str,
        typer.Option(
            help="The ladder's compute budget (15m, 90s, 1h30m, or none): steps are fitted to "
            "it (fewer test examples, a training subsample, fewer trials) or reported as not "
            "run with the command that runs them. Pinned candidates ignore it."
        ),
    ] = DEFAULT_BUDGET,
    log: Annotated[str | None, typer.Option(help=LOG_HELP)] = None,
    train_processes: TrainProcesses = None,
    accelerate_config: AccelerateConfig = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Measure the candidates on the same held-out examples, then recommend one and say what
    to do next. Without --strategies or candidates in task.yaml, climb the four steps."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.run import run_task

        loggers = trackers(log)  # a missing tracker package fails before any work
        task = load_with_training(task_file, train_processes, accelerate_config)
        options = _run_options(
            task_file, strategies, model, limit, strict, learning_curve, dtype, repeats, budget
        )
        with progress_bars() as bars:
            result = run_task(task, options, BarProgress(bars, task))
        folder = _write_and_show(result, out)
        log_written(folder, loggers)


def _run_options(
    task_file: Path,
    strategies: str | None,
    model: str | None,
    limit: str | None,
    strict: bool,
    learning_curve: str | None,
    dtype: str,
    repeats: int,
    budget: str,
) -> RunOptions:
    """`tunewise run`'s flags as the library's RunOptions."""
    return RunOptions(
        strategies=_split_csv(strategies),
        model=model,
        limit=_limit(limit),
        strict=strict,
        learning_curve=_sizes(learning_curve),
        dtype=dtype,
        repeats=repeats,
        budget=parse_budget(budget),
        task_file=str(task_file),
    )


def _write_and_show(result: RunResult, out: Path) -> Path:
    """Warn about leaked test inputs; write the run folder, record it in the ledger, and print
    its table and files."""
    from tunewise.records.results import write_run

    if result.dataset.leaked:
        errors.print(
            f"warning: {len(result.dataset.leaked)} test inputs also appear in train "
            "(use --strict to make this an error)"
        )
    folder = write_run(result, out)
    record_run(folder)
    document = json.loads((folder / "results.json").read_text())
    console.print(render_table(document))
    console.print(
        f"results: {folder / 'results.json'}\npredictions: {folder / 'predictions.jsonl'}\n"
        f"report: {folder / 'report.html'} (and report.md)"
    )
    return folder


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
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.checks import check_task, write_findings
        from tunewise.checks.summary import render_summary
        from tunewise.task.loading import load_task

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
        str | None,
        typer.Option(
            help=f"Fine-tuning strategies to train: {_listed(trains=True)} (comma-separated). "
            "Default: the first the ladder trains."
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="Model spec (overrides task.yaml).")] = None,
    train_processes: TrainProcesses = None,
    accelerate_config: AccelerateConfig = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Train the task's adapters into the cache, without evaluating.

    With --train-processes N each adapter trains on N processes under `accelerate launch`; a
    later `tunewise run` with the same --train-processes reuses the adapters."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.run import train_only

        task = load_with_training(task_file, train_processes, accelerate_config)
        chosen = _split_csv(strategies) or (first_in_ladder("fine-tuning"),)
        options = RunOptions(chosen, model)
        with progress_bars() as bars:
            trained = train_only(task, options, BarProgress(bars))
        for name, folder in trained:
            console.print(f"{name}: adapter in {folder}")


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    candidate: Annotated[str, typer.Option(help="The candidate to export, by its name.")],
    format: Annotated[
        str,
        typer.Option(
            "--format",
            help="fine-tuned: adapter | merged | openai-jsonl; prompting: openai-messages | "
            "promptfoo | text",
        ),
    ] = "adapter",
    out: Annotated[
        Path | None,
        typer.Option(
            help="File (openai-messages, text) or folder to create (default "
            "RUN_DIR/exports/NAME-FORMAT)."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show details.")] = False,
) -> None:
    """Export a candidate: a fine-tuned one's adapter, merged model or data as OpenAI JSONL; a
    prompting one's measured prompt as OpenAI messages, a promptfoo prompt, or text."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.records import prompt_export
        from tunewise.records.export import export as export_candidate

        formats = (*prompt_export.ADAPTER_FORMATS, *prompt_export.PROMPT_FORMATS)
        if format not in formats:
            raise TunewiseError(f"unknown --format '{format}'; use one of {', '.join(formats)}")
        target = out or prompt_export.default_out(run_dir, candidate, format)
        if format in prompt_export.PROMPT_FORMATS:
            path = prompt_export.export_prompt(run_dir, candidate, format, target)  # type: ignore[arg-type]
        else:
            path = export_candidate(run_dir, candidate, format, target)  # type: ignore[arg-type]
        console.print(f"exported {candidate} as {format}: {path}")


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
    quiet_libraries(verbose)
    with user_errors(verbose):
        import uvicorn

        from tunewise.inference.serve import create_app
        from tunewise.records.rebuild import load_candidate

        api_key = api_key_from(api_key_env)
        served = load_candidate(run_dir, candidate)
        app_ = create_app(
            served,
            api_key=api_key,
            max_request_bytes=max_request_bytes,
            max_input_chars=max_input_chars,
        )
        errors.print(f"serving '{candidate}' on http://{host}:{port}/v1 (Ctrl-C stops)")
        uvicorn.run(app_, host=host, port=port, log_level="info" if verbose else "warning")


register(app)  # the ledger's commands: runs, diff, gate, approve
register_tracking(app)  # log
app.command()(plan)
app.command()(fine_tuning_server)


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="A runs/<run-id> folder.")],
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Show a finished run's table and recommendation again, and (re)write its report.html and
    report.md."""
    quiet_libraries(verbose)
    with user_errors(verbose):
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
    from tunewise.task.loading import task_schema

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
