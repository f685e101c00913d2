"""How far does the model judge agree with the reference-based metrics? Spearman's rank
correlation (bootstrap 95% CI, n) between each answer's `judge` score and its ROUGE-L, embedding
similarity and any user metric, over every test answer of a run, pooled and per candidate.

    .venv/bin/python bench/judge_agreement.py runs/<run-id> [--out bench/results/judge.json]

Use it on a run of a task with a `judge:` block and no human grades (with grades, results.json's
judge.calibration already holds the agreement with people).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from tunewise.evaluation.judging import spearman_with_ci


def agreement(lines: list[dict[str, Any]], seed: int = 0) -> dict[str, Any]:
    """Spearman of `judge` against every other graded score the lines share."""
    judged = [line for line in lines if line["split"] == "test" and "judge" in line["scores"]]
    if not judged:
        raise SystemExit("no judged test answers in this run: does its task have a judge?")
    # A score that never varies (exact match on free text) has no ranking to agree with.
    others = [
        k
        for k in judged[0]["scores"]
        if k not in {"judge", "valid"} and len({line["scores"][k] for line in judged}) > 1
    ]
    groups: dict[str, list[dict[str, Any]]] = {"all": judged}
    for line in judged:
        groups.setdefault(line["candidate"], []).append(line)
    table: dict[str, Any] = {}
    for group, rows in groups.items():
        judge = [r["scores"]["judge"] for r in rows]
        table[group] = {
            metric: spearman_with_ci(
                judge, [r["scores"][metric] for r in rows], seed=seed
            ).to_dict()
            for metric in others
        }
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    text = (args.run / "predictions.jsonl").read_text(encoding="utf-8")
    lines = [json.loads(line) for line in text.splitlines()]
    results = json.loads((args.run / "results.json").read_text(encoding="utf-8"))
    report = {
        "run": results["run_id"],
        "judge": {k: results["judge"][k] for k in ("model", "mode", "self_consistency")},
        "spearman_with_judge": agreement(lines, results["seed"]),
    }
    for group, metrics in report["spearman_with_judge"].items():
        cells = ", ".join(
            f"{m} {v['value']:.2f} [{v['ci_low']:.2f}, {v['ci_high']:.2f}]"
            for m, v in metrics.items()
        )
        print(f"{group} (n={next(iter(metrics.values()))['n']}): {cells}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
