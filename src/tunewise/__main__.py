"""`python -m tunewise` is the same as the `tunewise` command."""

from tunewise.cli import app

app(prog_name="tunewise")
