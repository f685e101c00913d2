"""The plan's estimates against what each step cost, on every shipped example (and any task given).

First `tunewise plan TASK` with its defaults is timed, wall clock from the command's start to its
table (the acceptance: under 60 s per shipped example). Then `tunewise run TASK --limit N
--budget B` walks the ladder in the same home (it may reuse answers the plan timed: they keep the
compute they recorded); results.json's `ladder.plan` keeps, per step that ran,
`estimated_seconds` (the plan's rates, timed on a few of the task's own answers and a warm-up
training, applied to the work the step's candidates did) beside `actual_seconds` (the compute
they recorded). A task's pinned candidates are left out, so every task walks the ladder with each
strategy's default settings. Each task runs in a fresh `TUNEWISE_HOME` (empty caches: nothing is
reused from an earlier task) sharing the converted model; the table is the ratio actual /
estimate, to be within 2x either way.

    .venv/bin/python bench/plan_vs_actual.py [--limit 48] [--budget 4m] [--out FILE.json]
        [TASK.yaml ...]    # default: every examples/*/task.yaml
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return platform.processor() or "unknown CPU"
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    name = fields.get("Model name", "unknown CPU").strip()
    flags = fields.get("Flags", "")
    isa = "AMX" if "amx_tile" in flags else "AVX-512" if "avx512f" in flags else "AVX2"
    return f"{name}, {os.cpu_count()} cores, {isa}"


def climbing_copy(task: Path, scratch: Path) -> Path:
    """The task's folder copied without its pinned candidates, so that `tunewise run` walks the
    ladder (with each strategy's default settings) on every task."""
    folder = scratch / "tasks" / task.parent.name
    shutil.copytree(task.parent, folder)
    document = yaml.safe_load(task.read_text(encoding="utf-8"))
    document.pop("candidates", None)
    for key, value in (document.get("data") or {}).items():  # paths outside the folder
        if isinstance(value, str) and value.startswith(".."):
            document["data"][key] = str((task.parent / value).resolve())
    copy = folder / task.name
    copy.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return copy


def plan_seconds(task: Path, home: Path) -> float:
    """Wall seconds of `tunewise plan TASK` with its defaults, as a user would first type it."""
    env = {**os.environ, "TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    began = time.perf_counter()
    command = [sys.executable, "-m", "tunewise", "plan", str(task)]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return round(time.perf_counter() - began, 1)


def run_task(task: Path, limit: int, budget: str, home: Path) -> dict:
    """One `tunewise run` of the ladder; its results.json's plan, and its wall time."""
    out = home / "runs"
    env = {**os.environ, "TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    command = [sys.executable, "-m", "tunewise", "run", str(task), "--limit", str(limit),
               "--budget", budget, "--out", str(out)]  # fmt: skip
    began = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - began
    results = json.loads(next(out.glob("*/results.json")).read_text())
    ladder = results["ladder"]
    return {"task": task.parent.name, "wall_seconds": round(wall, 1), "plan": ladder["plan"],
            "compute_seconds": ladder["compute_seconds"]}  # fmt: skip


def rows(run: dict) -> list[dict]:
    table = []
    for step in run["plan"]["steps"]:
        estimate, actual = step["estimated_seconds"], step["actual_seconds"]
        if estimate is None or actual is None:
            continue
        ratio = actual / estimate if estimate > 0 else float("inf")
        row = {"task": run["task"], "step": f"{step['step']}. {step['title']}"}
        table.append(row | {"estimated": estimate, "actual": actual, "ratio": round(ratio, 2)})
    return table


def shared_model_home(scratch: Path) -> Path:
    """A TUNEWISE_HOME template holding only the converted model (so every task starts with
    empty answer and adapter caches, without converting the model again)."""
    source = Path(os.environ.get("TUNEWISE_HOME", Path.home() / ".cache" / "tunewise"))
    template = scratch / "template"
    template.mkdir()
    if (source / "models").is_dir():
        (template / "models").symlink_to(source / "models")
    return template


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tasks", nargs="*", type=Path)
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--budget", default="4m")
    parser.add_argument("--out", type=Path, default=ROOT / "bench/results/plan_vs_actual.json")
    args = parser.parse_args()
    tasks = args.tasks or sorted(ROOT.glob("examples/*/task.yaml"))
    runs, table = [], []
    with tempfile.TemporaryDirectory() as scratch:
        template = shared_model_home(Path(scratch))
        for task in tasks:
            home = Path(scratch) / task.parent.name
            shutil.copytree(template, home, symlinks=True)
            copy = climbing_copy(task, Path(scratch))
            planned = plan_seconds(copy, home)
            print(f"{task.parent.name:28} tunewise plan: {planned:.1f} s", flush=True)
            run = run_task(copy, args.limit, args.budget, home) | {"plan_wall_seconds": planned}
            runs.append(run)
            table.extend(rows(run))
            for row in rows(run):
                print(f"{row['task']:28} {row['step']:16} estimated {row['estimated']:7.1f} s  "
                      f"actual {row['actual']:7.1f} s  x{row['ratio']}", flush=True)  # fmt: skip
    worst = max((max(r["ratio"], 1 / r["ratio"]) for r in table if r["ratio"] > 0), default=None)
    slowest_plan = max((r["plan_wall_seconds"] for r in runs), default=None)
    document = {"machine": cpu_name(), "limit": args.limit, "budget": args.budget,
                "runs": runs, "table": table, "worst_factor": worst,
                "slowest_plan_seconds": slowest_plan}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\n{document['machine']}; worst factor {worst}; slowest plan {slowest_plan} s; "
          f"written {args.out}")  # fmt: skip


if __name__ == "__main__":
    main()
