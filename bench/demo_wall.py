"""Wall time of the full ladder on every shipped example, stage by stage.

    .venv/bin/python bench/demo_wall.py [--examples review-sentiment,country-facts] [--dtype auto]

Each example runs `tunewise run` (the library call the CLI makes) with every strategy its data
allows: zero-shot, few-shot, lora, and rag + hybrid when it has documents. A fresh TUNEWISE_HOME
(empty response, index and adapter caches; the converted embedded model is shared, so the one-off
GGUF conversion is not counted) makes every stage real work. The target: each example within
10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 600


@dataclass
class StageClock:
    """A Progress that records when each stage started and when its last step finished."""

    stages: list[dict[str, Any]] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def stage(self, description: str, total: int) -> Callable[[int], None]:
        record = {"stage": description, "steps": total, "start": time.perf_counter(), "end": None}
        self.stages.append(record)

        def advance(n: int) -> None:
            record["end"] = time.perf_counter()

        return advance

    def table(self, finished: float) -> list[dict[str, Any]]:
        """Each stage's seconds, and the time between stages (loading, checks, retrieval for
        training data, reports) as its own row, so the rows add up to the wall time."""
        rows = []
        last = self.started
        for record in [*self.stages, {"stage": None, "start": finished, "end": finished}]:
            if record["start"] - last >= 0.5:
                gap = round(record["start"] - last, 1)
                rows.append({"stage": "(between stages)", "steps": 0, "seconds": gap})
            if record["stage"] is None:
                break
            end = record["end"] if record["end"] is not None else record["start"]
            rows.append(
                {
                    "stage": record["stage"],
                    "steps": record["steps"],
                    "seconds": round(end - record["start"], 1),
                }
            )
            last = end
        return rows


def run_example(name: str, dtype: str) -> dict[str, Any]:
    from tunewise.run import RunOptions, run_task
    from tunewise.task.loading import load_task

    task = load_task(ROOT / "examples" / name / "task.yaml")
    strategies = ["zero-shot", "few-shot", "lora"]
    if task.data.documents is not None:
        strategies[2:2] = ["rag"]
        strategies.append("hybrid")
    clock = StageClock()
    result = run_task(task, RunOptions(strategies=tuple(strategies), dtype=dtype), clock)
    finished = time.perf_counter()
    wall = finished - clock.started
    return {
        "example": name,
        "strategies": strategies,
        "seconds": round(wall, 1),
        "within_target": wall <= TARGET_SECONDS,
        "test_examples": len(result.test),
        "stages": clock.table(finished),
        "candidates": {
            c.name: {
                "setup_seconds": round(float(c.setup.get("seconds", 0.0)), 1),
                "metrics": {k: v.to_dict() for k, v in c.metrics.items()},  # with CI and n
                "repair": c.repair.to_dict() if c.repair is not None else None,
            }
            for c in result.candidates
            if c.measured
        },
    }


def fresh_home() -> Path:
    """An empty TUNEWISE_HOME sharing the already converted embedded model."""
    from tunewise.home import tunewise_home
    from tunewise.models.local import embedded_model_folder

    converted = embedded_model_folder(tunewise_home()).parent
    home = Path(tempfile.mkdtemp(prefix="tunewise-bench-"))
    (home / "models").symlink_to(converted)
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", default="review-sentiment,country-facts")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    import torch

    home = fresh_home()
    os.environ["TUNEWISE_HOME"] = str(home)
    rows = [run_example(name, args.dtype) for name in args.examples.split(",")]
    document = {
        "command": f"python bench/demo_wall.py --examples {args.examples} --dtype {args.dtype}",
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
        },
        "target_seconds": TARGET_SECONDS,
        "examples": rows,
    }
    for row in rows:
        verdict = "within" if row["within_target"] else "OVER"
        print(f"\n## {row['example']}: {row['seconds']:.0f} s ({verdict} the 10-minute target)")
        print("| stage | steps | seconds |\n|---|---:|---:|")
        for stage in row["stages"]:
            print(f"| {stage['stage']} | {stage['steps']} | {stage['seconds']} |")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        staging = args.out.with_suffix(".tmp")
        staging.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        staging.replace(args.out)


if __name__ == "__main__":
    main()
