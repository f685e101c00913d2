"""Do bfloat16 predictions agree with float32 ones? 8-shot label scoring of
examples/review-sentiment's test split with the embedded model, once per dtype.

    .venv/bin/python bench/bf16_agreement.py [--limit N] [--out bench/results/bf16_agreement.json]

Target: at least 99% of predictions identical. The timing says whether bf16 pays on this CPU:
`--dtype auto` picks it only where the hardware computes bf16 natively (AMX or AVX-512 BF16, or
a bf16-capable GPU); elsewhere torch emulates it, which is slower than float32.
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


def score(dtype: str, limit: int | None) -> tuple[list[str], list[str], float]:
    """(example ids, predicted labels, seconds of scoring) for one dtype, cache bypassed."""
    from tunewise.candidates import FewShotCandidate
    from tunewise.data import sample_examples, stratify_by_label
    from tunewise.models.local import LocalModel, embedded_model_folder, tunewise_home
    from tunewise.run import RunOptions, load_data
    from tunewise.strategies import PREPARERS
    from tunewise.task import load_task

    task = load_task(TASK)
    dataset, test = load_data(task, RunOptions())
    if limit is not None:
        test = sample_examples(
            test, limit, task.seed, stratify_by_label(task.contract.output_format)
        )
    home = tunewise_home()
    backend = LocalModel(task.model, embedded_model_folder(home), home, dtype=dtype)
    spec = next(c for c in task.candidates if isinstance(c, FewShotCandidate))
    predictor = PREPARERS["few-shot"](task, spec, dataset.train, backend, "few-shot")
    conversations = [predictor.request(example).messages for example in test]
    labels = list(task.contract.output_format.labels)
    backend.score_labels(conversations[:1], labels)  # load and warm up, untimed
    start = time.perf_counter()
    scores = []
    for i in range(0, len(conversations), backend.batch_size):
        scores.extend(backend.score_labels(conversations[i : i + backend.batch_size], labels))
    return [e.id for e in test], [s.label for s in scores], time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    ids, full, full_s = score("float32", args.limit)
    _, half, half_s = score("bfloat16", args.limit)
    same = sum(a == b for a, b in zip(full, half, strict=True))
    document: dict[str, Any] = {
        "command": f"python bench/bf16_agreement.py --limit {args.limit}",
        "machine": {
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        },
        "examples": len(ids),
        "agreement": round(same / len(ids), 4),
        "differing": [i for i, a, b in zip(ids, full, half, strict=True) if a != b],
        "seconds": {"float32": round(full_s, 2), "bfloat16": round(half_s, 2)},
    }
    print(json.dumps(document, indent=2))
    if args.out:
        staging = args.out.with_suffix(".tmp")
        staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        staging.replace(args.out)


if __name__ == "__main__":
    main()
