"""`tunewise view`: the ledger's runs in a web browser."""

from __future__ import annotations

from typing import Annotated

import typer

from tunewise.cli.terminal import api_key_from, errors, user_errors


def view(
    host: Annotated[
        str, typer.Option(help="Interface to bind; 0.0.0.0 exposes it to the network.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8321,
    api_key_env: Annotated[
        str | None,
        typer.Option(
            help="Require the key in this variable: ?token=KEY once in the browser, or "
            "'Authorization: Bearer KEY'."
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Browse the recorded runs in a web browser: the runs table with search and filters, one
    run's candidates, decision and plots, and two runs diffed."""
    with user_errors(verbose):
        import uvicorn

        from tunewise.records.ledger import ledger_path
        from tunewise.view.viewer import LOOPBACK, create_app

        api_key = api_key_from(api_key_env)
        path = ledger_path()
        # Bound to loopback, it answers only to loopback names (no DNS rebinding).
        allowed = LOOPBACK if host in LOOPBACK else None
        app_ = create_app(path, api_key=api_key, allowed_hosts=allowed)
        shown = f"[{host}]" if ":" in host else host
        url = f"http://{shown}:{port}/" + (f"?token=${api_key_env}" if api_key_env else "")
        errors.print(f"viewing {path} on {url} (Ctrl-C stops)", markup=False, soft_wrap=True)
        uvicorn.run(app_, host=host, port=port, log_level="info" if verbose else "warning")
