"""Where each label candidate fails: its confusion matrix and per-class precision/recall/F1."""

from __future__ import annotations

from dataclasses import dataclass

from tunewise.report.cells import Table
from tunewise.schemas.run_candidate import CandidateRecord


@dataclass(frozen=True)
class Confusion:
    candidate: str
    matrix: Table  # rows: reference label; columns: predicted label
    per_class: Table
    never_right: list[str]  # labels with support that the candidate never got right


def confusions(measured: list[CandidateRecord]) -> list[Confusion]:
    found = []
    for c in measured:
        table = c.confusion
        if table is None:
            continue
        matrix = Table(
            ["reference \\ predicted", *table.columns],
            [
                [label, *(str(n) for n in row)]
                for label, row in zip(table.labels, table.matrix, strict=True)
            ],
        )
        per_class = table.per_class
        rows = [
            [label, f"{v.precision:.3f}", f"{v.recall:.3f}", f"{v.f1:.3f}",
             str(v.support), str(v.predicted)]
            for label, v in per_class.items()
        ]  # fmt: skip
        never = [label for label, v in per_class.items() if v.support and not v.recall]
        header = ["label", "precision", "recall", "F1", "support", "predicted"]
        found.append(Confusion(c.name, matrix, Table(header, rows), never))
    return found
