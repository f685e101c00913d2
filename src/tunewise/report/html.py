"""report.html: one self-contained page (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from tunewise.report.content import CRITERIA, build_report
from tunewise.report.plots import render_plots
from tunewise.report.risks import LANGUAGES_NOTE, REPAIR_NOTE
from tunewise.schemas.run_file import RunRecord, read_run

# autoescape=True everywhere: dataset text and model outputs reach the page, and none of it is
# ever marked safe. Only the SVG drawn by plots.py is (its writer escapes the text inside).
_ENV = Environment(
    loader=PackageLoader("tunewise.report", "templates"),
    autoescape=True,
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    keep_trailing_newline=True,
)


def render_html(results: Mapping[str, Any] | RunRecord, predictions: list[dict[str, Any]]) -> str:
    """The whole report page as a string."""
    run = read_run(results)
    plots = [
        {"key": p.key, "title": p.title, "caption": p.caption, "svg": Markup(p.svg)}
        for p in render_plots(run)
    ]
    template = _ENV.get_template("report.html.j2")
    return template.render(
        report=build_report(run, predictions),
        plots=plots,
        repair_note=REPAIR_NOTE,
        languages_note=LANGUAGES_NOTE,
        criteria=CRITERIA,
    )
