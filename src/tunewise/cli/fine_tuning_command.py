"""`tunewise fine-tuning-server`: the OpenAI fine-tuning API served from this machine's device
by tunewise's own trainer (fine_tuning_server/)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunewise.cli.terminal import api_key_from, errors, quiet_libraries, user_errors
from tunewise.models.weights import EMBEDDED_NAME

_DATA_HELP = "Where files, jobs (fine-tuning.sqlite) and adapters are kept; a restarted server "
_DATA_HELP += "resumes its jobs from here. Default: fine-tuning-server/ in $TUNEWISE_HOME."


def fine_tuning_server(
    model: Annotated[str, typer.Option(help="The base model to fine-tune and serve.")] = (
        EMBEDDED_NAME
    ),
    host: Annotated[
        str, typer.Option(help="Interface to bind; beyond loopback, --api-key-env is required.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8000,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Require 'Authorization: Bearer <key>' with the key in this variable."),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help=_DATA_HELP)] = None,
    max_upload_bytes: Annotated[int, typer.Option(min=1, help="Larger uploads get 413.")] = (
        512 * 2**20
    ),
    checkpoint_every: Annotated[
        int, typer.Option(min=1, help="Training steps between checkpoints a restart resumes from.")
    ] = 25,
    dtype: Annotated[
        str, typer.Option(help="auto, float32 or bfloat16 (answers and training).")
    ] = "float32",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Serve the OpenAI fine-tuning API (/v1/files, /v1/fine_tuning/jobs, /v1/models,
    /v1/chat/completions) from this machine: jobs train one at a time with tunewise's trainer
    and survive a restart; fine-tuned models answer as `ft:` models."""
    quiet_libraries(verbose)
    with user_errors(verbose):
        from tunewise.fine_tuning_server.server import (
            ServerSettings,
            check_exposure,
            local_service,
            run,
        )
        from tunewise.home import tunewise_home

        api_key = api_key_from(api_key_env)
        check_exposure(host, api_key)
        data = data_dir or tunewise_home() / "fine-tuning-server"
        service = local_service(
            model, data, dtype=dtype, training={"checkpoint_every": checkpoint_every},
            max_upload_bytes=max_upload_bytes,
        )  # fmt: skip
        settings = ServerSettings(host, port, api_key, max_upload_bytes)
        shown = f"[{host}]" if ":" in host else host
        errors.print(
            f"fine-tuning '{model}' on http://{shown}:{port}/v1, data in {data} (Ctrl-C stops)",
            markup=False, soft_wrap=True,
        )  # fmt: skip
        run(service, settings, log_level="info" if verbose else "warning")
