"""Do bfloat16 predictions agree with float32 ones? 8-shot label scoring of
examples/review-sentiment's test split with the embedded model: float32, plain bfloat16, and
bfloat16 with its near ties settled in float32 (what `--dtype bfloat16` and, on bf16 hardware,
`--dtype auto` run).

    .venv/bin/python bench/bf16_agreement.py [--limit N] [--out bench/results/bf16_agreement.json]

Target: at least 99% of predictions identical to float32. The report also gives how far bf16
moves the gap between the two best labels' log-probs, which is what NEAR_TIE_NATS must cover,
and the time of each pass (cache bypassed, model loaded and warmed up before timing).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TASK = ROOT / "examples" / "review-sentiment" / "task.yaml"


def score(dtype: str, limit: int | None, near_tie_nats: float | None = None) -> dict[str, Any]:
    """Example ids, predicted labels, label log-probs and seconds of scoring for one dtype."""
    from tunewise.home import tunewise_home
    from tunewise.models.local import LocalModel, embedded_model_folder
    from tunewise.run import RunOptions, load_data
    from tunewise.strategies import PREPARERS
    from tunewise.strategies.few_shot import FewShotCandidate
    from tunewise.task.data import sample_examples, stratify_by_label
    from tunewise.task.loading import load_task

    task = load_task(TASK)
    dataset, test = load_data(task, RunOptions())
    if limit is not None:
        test = sample_examples(
            test, limit, task.seed, stratify_by_label(task.contract.output_format)
        )
    home = tunewise_home()
    backend = LocalModel(task.model, embedded_model_folder(home), home, dtype=dtype)
    if near_tie_nats is not None:
        backend.near_tie_nats = near_tie_nats
    spec = next(c for c in task.candidates if isinstance(c, FewShotCandidate))
    predictor = PREPARERS["few-shot"](task, spec, dataset.train, backend, "few-shot")
    conversations = [predictor.request(example).messages for example in test]
    labels = list(task.contract.output_format.labels)
    backend.score_labels(conversations[:1], labels)  # load and warm up, untimed
    if dtype != "float32" and backend.near_tie_nats > 0:
        backend._float32_twin().score_labels(conversations[:1], labels)
    start = time.perf_counter()
    scores = []
    for i in range(0, len(conversations), backend.batch_size):
        scores.extend(backend.score_labels(conversations[i : i + backend.batch_size], labels))
    return {
        "ids": [e.id for e in test],
        "labels": [s.label for s in scores],
        "logprobs": [s.logprobs or {} for s in scores],
        "seconds": time.perf_counter() - start,
    }


def top_gap(logprobs: dict[str, float]) -> tuple[str, str, float]:
    """The best and second label, and how far apart their log-probs are."""
    first, second = sorted(logprobs, key=lambda label: -logprobs[label])[:2]
    return first, second, logprobs[first] - logprobs[second]


def gap_shift(full: list[dict[str, float]], half: list[dict[str, float]]) -> list[float]:
    """Per example: how far bf16 moves the gap between float32's two best labels."""
    shifts = []
    for a, b in zip(full, half, strict=True):
        first, second, gap = top_gap(a)
        shifts.append(abs((b[first] - b[second]) - gap))
    return shifts


def agreement(full: list[str], other: list[str]) -> float:
    return round(sum(a == b for a, b in zip(full, other, strict=True)) / len(full), 4)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    from tunewise.models.dtype import NEAR_TIE_NATS, near_tie

    full = score("float32", args.limit)
    plain = score("bfloat16", args.limit, near_tie_nats=0)
    checked = score("bfloat16", args.limit)
    shifts = sorted(gap_shift(full["logprobs"], plain["logprobs"]))
    settled = sum(near_tie(list(lp.values()), NEAR_TIE_NATS) for lp in plain["logprobs"])
    n = len(full["ids"])
    document: dict[str, Any] = {
        "command": f"python bench/bf16_agreement.py --limit {args.limit}",
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "examples": n,
        "near_tie_nats": NEAR_TIE_NATS,
        "agreement": {
            "bfloat16": agreement(full["labels"], plain["labels"]),
            "bfloat16_near_ties_in_float32": agreement(full["labels"], checked["labels"]),
        },
        "differing": {
            "bfloat16": [
                i
                for i, a, b in zip(full["ids"], full["labels"], plain["labels"], strict=True)
                if a != b
            ],
            "bfloat16_near_ties_in_float32": [
                i
                for i, a, b in zip(full["ids"], full["labels"], checked["labels"], strict=True)
                if a != b
            ],
        },
        "gap_shift_nats": {
            "median": round(shifts[n // 2], 4),
            "p99": round(shifts[min(n - 1, int(n * 0.99))], 4),
            "max": round(shifts[-1], 4),
        },
        "settled_in_float32": {"count": settled, "share": round(settled / n, 4)},
        "seconds": {
            "float32": round(full["seconds"], 2),
            "bfloat16": round(plain["seconds"], 2),
            "bfloat16_near_ties_in_float32": round(checked["seconds"], 2),
        },
    }
    print(json.dumps(document, indent=2))
    if args.out:
        staging = args.out.with_suffix(".tmp")
        staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        staging.replace(args.out)


if __name__ == "__main__":
    main()
