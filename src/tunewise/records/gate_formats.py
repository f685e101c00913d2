"""The regression gate's report in the forms CI systems read: plain text, JUnit XML, one JSON
document, and GitHub Actions workflow commands.

Pure functions from a GateReport to a string; the CLI decides where the string goes.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tunewise.errors import TunewiseError
from tunewise.records.compare import CandidateDiff, Flip, GateResult, MetricCheck

SHOWN_EXAMPLES = 10  # flipped example ids named in one message line; JSON lists them all
DETAILED_EXAMPLES = 20  # flipped examples described in a JUnit failure's body
# Characters XML 1.0 cannot hold at all, not even escaped (a model's output may contain them).
NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


@dataclass(frozen=True)
class GateReport:
    """What one gate checked: the two runs, the per-candidate diffs and the verdict."""

    task: str
    baseline: str  # run id
    current: str  # run id
    diffs: list[CandidateDiff]
    result: GateResult

    def regressed(self) -> list[MetricCheck]:
        return [c for c in self.result.checks if c.regressed]

    def flipped(self, check: MetricCheck) -> list[str]:
        """The examples this metric scored lower now (right -> wrong for right/wrong metrics)."""
        diff = next(d for d in self.diffs if d.candidate == check.candidate)
        return diff.lowered.get(check.metric, [])


def figures(check: MetricCheck) -> str:
    """The numbers behind one verdict, as compare.py computes them."""
    t = check.test
    return (
        f"{t.a:.3f} -> {t.b:.3f} (drop {-t.delta:.3f}; {t.test} p={t.p_value:.3g}, "
        f"95% CI of the change {t.ci_low:+.3f} to {t.ci_high:+.3f}, n={t.n})"
    )


def named(ids: list[str], limit: int = SHOWN_EXAMPLES) -> str:
    if not ids:
        return "none"
    more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
    return ", ".join(ids[:limit]) + more


def failure_message(check: MetricCheck, flipped: list[str], result: GateResult) -> str:
    return (
        f"{check.candidate} {check.metric}: {figures(check)}, a significant drop beyond "
        f"{result.max_drop} at alpha {result.alpha}; right -> wrong: {named(flipped)}"
    )


# ---- text ------------------------------------------------------------------------------------


def text(report: GateReport) -> str:
    """What `tunewise gate` has always printed: the two runs, then one line per metric."""
    lines = [f"baseline {report.baseline} -> {report.current}", *report.result.lines]
    return "\n".join(lines) + "\n"


# ---- JUnit XML -------------------------------------------------------------------------------


def _xml_text(value: str) -> str:
    return NOT_XML.sub("\ufffd", value)


def _described(flip: Flip) -> str:
    return (
        f"{flip.example_id}: {flip.input[:80]!r} expected {flip.reference[:40]!r}, "
        f"{flip.output_a[:40]!r} -> {flip.output_b[:40]!r}"
    )


def _failure_body(report: GateReport, check: MetricCheck, flipped: list[str]) -> str:
    diff = next(d for d in report.diffs if d.candidate == check.candidate)
    flips = {f.example_id: f for f in diff.flips}
    lines = [f"baseline {report.baseline} -> {report.current}", *diff.changes]
    lines += [_described(flips[e]) if e in flips else e for e in flipped[:DETAILED_EXAMPLES]]
    if len(flipped) > DETAILED_EXAMPLES:
        lines.append(f"... and {len(flipped) - DETAILED_EXAMPLES} more")
    return "\n".join(lines)


def junit(report: GateReport) -> str:
    """One <testsuite> per candidate, one <testcase> per metric, a <failure> per regression."""
    checks, regressed = report.result.checks, report.regressed()
    root = ET.Element(
        "testsuites",
        name="tunewise gate",
        tests=str(len(checks)),
        failures=str(len(regressed)),
        errors="0",
    )
    for diff in report.diffs:
        mine = [c for c in checks if c.candidate == diff.candidate]
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml_text(diff.candidate),
            tests=str(len(mine)),
            failures=str(sum(c.regressed for c in mine)),
            errors="0",
            skipped="0",
        )
        properties = ET.SubElement(suite, "properties")
        for key, value in (
            ("baseline", report.baseline),
            ("current", report.current),
            ("max_drop", str(report.result.max_drop)),
            ("alpha", str(report.result.alpha)),
        ):
            ET.SubElement(properties, "property", name=key, value=_xml_text(value))
        for check in mine:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_xml_text(check.metric),
                classname=_xml_text(f"tunewise.gate.{report.task}"),
            )
            if check.regressed:
                flipped = report.flipped(check)
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=_xml_text(failure_message(check, flipped, report.result)),
                    type="regression",
                )
                failure.text = _xml_text(_failure_body(report, check, flipped))
    ET.indent(root)
    # Declared UTF-8: the CLI writes the string as UTF-8.
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


# ---- JSON ------------------------------------------------------------------------------------


def _metric_json(report: GateReport, check: MetricCheck) -> dict[str, Any]:
    t = check.test
    return {
        "baseline": t.a,
        "current": t.b,
        "drop": -t.delta,
        "test": t.test,
        "p_value": t.p_value,
        "ci_low": t.ci_low,
        "ci_high": t.ci_high,
        "n": t.n,
        "regressed": check.regressed,
        "flipped": report.flipped(check),
    }


def as_json(report: GateReport) -> str:
    """One JSON document; its shape is documented in docs/regressions.md."""
    document = {
        "task": report.task,
        "baseline_run_id": report.baseline,
        "current_run_id": report.current,
        "passed": report.result.passed,
        "max_drop": report.result.max_drop,
        "alpha": report.result.alpha,
        "candidates": [
            {
                "name": d.candidate,
                "shared_examples": d.shared_examples,
                "changes": d.changes,
                "metrics": {
                    c.metric: _metric_json(report, c)
                    for c in report.result.checks
                    if c.candidate == d.candidate
                },
            }
            for d in report.diffs
        ],
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


# ---- GitHub Actions --------------------------------------------------------------------------


def escape_data(value: str) -> str:
    """A workflow command's message, as GitHub's runner unescapes it."""
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(value: str) -> str:
    """A workflow command's property value (title=...): the data escapes plus ':' and ','."""
    return escape_data(value).replace(":", "%3A").replace(",", "%2C")


def _command(kind: str, message: str) -> str:
    return f"::{kind} title={escape_property('tunewise gate')}::{escape_data(message)}"


def github(report: GateReport) -> str:
    """An ::error line per regressed metric; one ::notice summary line when none regressed."""
    regressed = report.regressed()
    lines = [
        _command("error", failure_message(c, report.flipped(c), report.result)) for c in regressed
    ]
    if not regressed:
        checks = report.result.checks
        lines.append(
            _command(
                "notice",
                f"passed: {report.current} against baseline {report.baseline}, "
                f"{len(checks)} metrics of {len(report.diffs)} candidates checked, none dropped "
                f"significantly (alpha {report.result.alpha}) beyond {report.result.max_drop}",
            )
        )
    return "\n".join(lines) + "\n"


FORMATS: dict[str, Callable[[GateReport], str]] = {
    "text": text,
    "junit": junit,
    "json": as_json,
    "github": github,
}


def check_format(name: str) -> str:
    """The format's name, or an error listing the ones there are."""
    if name not in FORMATS:
        raise TunewiseError(f"unknown --format '{name}'; choose one of: {', '.join(FORMATS)}")
    return name


def render(report: GateReport, name: str) -> str:
    return FORMATS[check_format(name)](report)
