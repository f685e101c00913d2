"""The report's risk sections: validity before and after repair, what `tunewise check` found,
and quality per language (multilingual drift)."""

from __future__ import annotations

from collections.abc import Mapping

from tunewise.report.cells import Table, metric_cell, seconds, shown
from tunewise.schemas.run_candidate import CandidateRecord
from tunewise.schemas.run_file import RunRecord
from tunewise.schemas.run_sections import LanguageDriftRecord

REPAIR_NOTE = (
    "Generated answers that broke the output format were sent back with the validator's reason; "
    "the repair requests' tokens and time are included in usage and cost."
)


def repair_table(measured: list[CandidateRecord]) -> Table | None:
    """Validity before and after the repair loop, and what the repairs cost."""
    repaired = [(c.name, c.metrics, c.repair) for c in measured if c.repair]
    if not repaired:
        return None
    blocks = [b for _, _, b in repaired]
    metrics = [m for _, m, _ in repaired]
    rows = [
        ["validity before repair", *(metric_cell(m.get("format_validity_before_repair"))
                                     for m in metrics)],
        ["validity after repair", *(metric_cell(m.get("format_validity")) for m in metrics)],
        ["invalid answers", *(str(b.invalid_before) for b in blocks)],
        ["repaired", *(str(b.repaired) for b in blocks)],
        ["repair requests", *(f"{b.requests} (at most {b.max_repairs} per answer)"
                              for b in blocks)],
        ["repair tokens in / out", *(f"{b.input_tokens} / {b.output_tokens}" for b in blocks)],
        ["repair time", *(seconds(b.seconds) for b in blocks)],
    ]  # fmt: skip
    return Table(["", *(name for name, _, _ in repaired)], rows)


LANGUAGES_NOTE = (
    "Quality per input language, with 95% CIs; the drop is from each candidate's best language; "
    "answers count as in the expected language when the detector can tell their language."
)


def check_lines(run: RunRecord) -> list[str]:
    """What `tunewise check` warned about, then its notes (the special-token proof, ...)."""
    return [*run.checks.warnings, *run.checks.notes] if run.checks else []


MIN_LANGUAGE_SHARE = 0.05  # a language under 5% of the test set does not make it multilingual


def _multilingual(candidates: Mapping[str, LanguageDriftRecord]) -> bool:
    """At least two languages each carry 5% of the test examples (one misdetected line does
    not make a task multilingual)."""
    rows = next(iter(candidates.values())).languages
    counts = {code: row.score.n for code, row in rows.items() if code != "unknown"}
    total = sum(counts.values()) or 1
    return sum(1 for n in counts.values() if n / total >= MIN_LANGUAGE_SHARE and n >= 3) >= 2


def _significant(candidates: Mapping[str, LanguageDriftRecord]) -> bool:
    """Some candidate scores a language below its best language beyond both 95% CIs."""
    for c in candidates.values():
        scores = [row.score for code, row in c.languages.items() if code != "unknown"]
        best = max(scores, key=lambda s: s.value, default=None)
        if best and any(s.ci_high < best.ci_low for s in scores):
            return True
    return False


def languages_table(run: RunRecord) -> Table | None:
    """Each candidate's quality per input language, its answers in the expected language, and
    its largest drop from its best language."""
    drift = run.languages
    candidates = drift.candidates if drift else {}
    if not drift or not candidates:
        return None
    if not _multilingual(candidates) and not _significant(candidates):
        return None
    names = list(candidates)
    codes = list(dict.fromkeys(code for c in candidates.values() for code in c.languages))

    def score(name: str, code: str) -> str:
        row = candidates[name].languages.get(code)
        return metric_cell(row.score) if row else "-"

    def drop(name: str) -> str:
        found = candidates[name].drop
        largest = found.largest if found else None
        return f"{largest.drop:+.3f} ({largest.language})" if largest else "-"

    def in_language(name: str) -> str:
        rate = candidates[name].in_expected_language
        cell = metric_cell(rate.rate) if rate.rate else "no answer carries a language"
        return f"{cell}; {rate.undetermined} undetermined"

    rows = [[f"{shown(drift.metric)}: {code}", *(score(n, code) for n in names)]
            for code in codes]  # fmt: skip
    rows.append(["largest drop from the best language", *(drop(n) for n in names)])
    rows.append(["answers in the expected language", *(in_language(n) for n in names)])
    return Table(["", *names], rows)
