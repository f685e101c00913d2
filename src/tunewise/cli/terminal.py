"""What the command line prints: the consoles, third-party chatter kept quiet, and user errors
turned into one line and an exit code."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from tunewise.errors import TunewiseError

console = Console()
errors = Console(stderr=True)


def quiet_libraries(verbose: bool) -> None:
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
    for noisy in ("httpx", "openai", "urllib3", "filelock", "bm25s"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def api_key_from(variable: str | None) -> str | None:
    """The key a server checks, from the environment variable the user named (never a flag's
    value, which would land in shell history); None when no variable is named."""
    if variable is None:
        return None
    key = os.environ.get(variable)
    if not key:
        raise TunewiseError(f"--api-key-env {variable}: the variable is not set")
    return key


@contextmanager
def user_errors(verbose: bool) -> Iterator[None]:
    """Bad input: one line on stderr and exit code 2. Anything else: a short note, exit 1."""
    try:
        yield
    except TunewiseError as exc:
        # The message quotes user data; print it as literal text, never as rich markup.
        errors.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as exc:
        # Work that outlives the process (a fine-tuning service's job) says what it left.
        said = str(exc) or "interrupted; finished answers are cached, re-run the command to resume"
        errors.print(Text(said), soft_wrap=True)
        raise typer.Exit(130) from None
    except Exception as exc:
        if verbose:
            raise
        note = f" {type(exc).__name__}: {exc} (re-run with --verbose for the traceback)"
        errors.print(Text.assemble(("internal error:", "bold red"), note), soft_wrap=True)
        raise typer.Exit(1) from None
