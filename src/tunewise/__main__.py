"""`python -m tunewise` is the same as the `tunewise` command."""

from tunewise.cli.main import app

app(prog_name="tunewise")
