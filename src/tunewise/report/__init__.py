"""The run report: runs/<id>/report.html (self-contained, with plots) and report.md."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from tunewise.report.html import render_html
from tunewise.report.markdown import render_markdown
from tunewise.schemas.run_file import read_run

__all__ = ["render_html", "render_markdown", "write_report"]


def read_predictions(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _write_atomic(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 would hide the report from other readers
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_report(run_dir: Path) -> tuple[Path, Path]:
    """Render run_dir's results.json and predictions.jsonl into report.html and report.md."""
    run = read_run(run_dir)
    predictions = read_predictions(run_dir / "predictions.jsonl")
    # Both are rendered before either is written, so a rendering error leaves no new file.
    html, markdown = render_html(run, predictions), render_markdown(run, predictions)
    paths = run_dir / "report.html", run_dir / "report.md"
    for path, text in zip(paths, (html, markdown), strict=True):
        _write_atomic(path, text)
    return paths
