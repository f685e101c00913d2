"""Run artifacts: runs/<run-id>/{results.json, predictions.jsonl, report.html, report.md},
written all or nothing.

The files' shape is documented in schemas/results.schema.json and schemas/prediction.schema.json;
tools and tests read these files, so a change there is a schema_version change.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import tempfile
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import jsonschema

from tunewise.core.catalog import strategy_named, strategy_names
from tunewise.core.costs import (
    BreakEven,
    break_even_table,
    candidate_costs,
)
from tunewise.deciding.from_results import price_list
from tunewise.deciding.next_step import RUN_DIR
from tunewise.errors import TunewiseError
from tunewise.evaluation import per_example, validate
from tunewise.evaluation.confusion import confusion
from tunewise.inference.judge import candidate_judgement
from tunewise.measuring.across_datasets import dataset_table, macro_average
from tunewise.measuring.candidate import CandidateResult
from tunewise.measuring.selection import model_for
from tunewise.report import write_report
from tunewise.retrieval.index import Index
from tunewise.run import RunResult, sample_size

SCHEMA_VERSION = 1


def load_schema(name: str) -> dict[str, Any]:
    """A documented artifact schema: 'results' or 'prediction'. The results schema's strategy
    enum is the catalog's, so a registered plugin's candidates validate too."""
    text = resources.files("tunewise.schemas").joinpath(f"{name}.schema.json").read_text()
    schema = dict(json.loads(text))
    if name == "results":
        strategy = schema["$defs"]["candidate"]["properties"]["strategy"]
        strategy["enum"] = list(strategy_names())
    return schema


def load_run(run_dir: str | Path) -> dict[str, Any]:
    """A written run's results.json, checked against its schema."""
    path = Path(run_dir) / "results.json"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise TunewiseError(f"{path}: no such file; is {run_dir} a runs/<run-id> folder?") from None
    except json.JSONDecodeError as exc:
        raise TunewiseError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    errors = sorted(
        jsonschema.Draft202012Validator(load_schema("results")).iter_errors(document), key=str
    )
    if errors:
        where = "/".join(str(part) for part in errors[0].absolute_path) or "(top level)"
        raise TunewiseError(f"{path}: {where}: {errors[0].message}")
    return dict(document)


def new_run_id(task_name: str, out: Path) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_id, n = f"{stamp}-{task_name}", 1
    while (out / run_id).exists():
        n += 1
        run_id = f"{stamp}-{task_name}-{n}"
    return run_id


def machine() -> dict[str, Any]:
    """What the speed figures were measured on."""
    try:
        torch_version = metadata.version("torch")
    except metadata.PackageNotFoundError:
        torch_version = None
    return {
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch_version,
    }


def results_document(run: RunResult, run_id: str, out: Path = Path("runs")) -> dict[str, Any]:
    task = run.task
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "code_version": run.code_version,
        "task": {
            "name": task.name,
            "hash": run.task_hash,
            "output_format": task.contract.output_format.type,
            "target": task.target.model_dump() if task.target else None,
            "usage": task.usage.model_dump(),
            "max_new_tokens": task.max_new_tokens,
        },
        "seed": task.seed,
        "data": {
            "hash": run.dataset.hash,
            "train_examples": len(run.dataset.train),
            "test_examples": len(run.test),
            "test_examples_available": len(run.dataset.test),
            "test_source": run.dataset.test_source,
            "leaked_test_inputs": len(run.dataset.leaked),
            "limit": sample_size(task, run.options),
        },
        "machine": machine(),
        "seconds": round(run.seconds, 3),
        "candidates": [candidate_document(c, run) for c in run.candidates],
        "break_even": [row.to_dict() for row in break_even_rows(run)],
        "recommendation": _recommendation(run, out / run_id),
        "ladder": run.ladder.to_dict() if run.ladder else None,
        "learning_curve": _learning_curve(run),
        "documents": _documents(run),
        "datasets": [d.to_dict() for d in run.datasets] or None,
        "macro": macro_average(dataset_table(run.datasets)) if run.datasets else None,
        "checks": run.checks,
        "languages": run.languages,
        "judge": run.judge,
    }


def _recommendation(run: RunResult, folder: Path) -> dict[str, Any]:
    """The decision, its next step's command naming this run's folder where it needs one."""
    document = asdict(run.recommendation)
    step = document.get("next_step")
    if step and step["command"]:
        step["command"] = step["command"].replace(RUN_DIR, str(folder))
    return document


def _documents(run: RunResult) -> dict[str, Any] | None:
    knowledge = run.knowledge
    if knowledge is None:
        return None
    updates = None
    if knowledge.updated_hash is not None:
        updates = {
            "hash": knowledge.updated_hash,
            "documents": knowledge.updated_documents,
            "changed_documents": list(knowledge.changed),
            "questions": len(knowledge.questions),
            "index": _index(knowledge.updated),
        }
    return {
        "hash": knowledge.hash,
        "documents": knowledge.documents,
        "index": _index(knowledge.index),
        "updates": updates,
    }


def _index(index: Index | None) -> dict[str, Any] | None:
    if index is None:
        return None
    return {
        "key": index.key,
        "chunks": len(index.chunks),
        "embedded_chunks": index.embedded_chunks,
        "seconds": round(index.build_seconds, 3),
        "cached": index.cached,
        **index.settings.model_dump(),
    }


def _learning_curve(run: RunResult) -> dict[str, Any] | None:
    if run.learning_curve is None:
        return None
    # The curve is measured on the first fine-tuning candidate (measuring/curve.py chose it).
    name = next(
        c.name
        for c in run.candidates
        if c.measured and strategy_named(c.strategy).family == "fine-tuning"
    )
    return {"candidate": name, **run.learning_curve.to_dict()}


def break_even_rows(run: RunResult) -> list[BreakEven]:
    measured = [c.cost_inputs() for c in run.candidates if c.measured]
    usage = run.task.usage
    return break_even_table(
        measured, price_list(run.task), usage.requests_per_month, usage.horizon_months
    )


def candidate_document(result: CandidateResult, run: RunResult) -> dict[str, Any]:
    strategy = strategy_named(result.strategy)
    head = {
        "name": result.name,
        "strategy": result.strategy,
        "family": strategy.family,  # the report groups by these, importing no strategy
        "trains": strategy.trains,
        "effort": strategy.effort,
        "model": result.model,
    }
    if not result.measured:
        return {**head, "status": "skipped", "skipped_reason": result.skipped}
    setup = result.setup.record(adapter=f"adapters/{result.name}")
    return {
        **head,
        "status": "measured",
        "model_fingerprint": result.fingerprint,
        "params": result.params,
        **_label_scoring(result),
        "metrics": {name: value.to_dict() for name, value in result.metrics.items()},
        "usage": result.usage,
        "setup": setup,
        "cost": candidate_costs(
            result.cost_inputs(),
            price_list(run.task),
            run.task.usage.requests_per_month,
            run.task.usage.horizon_months,
        ).to_dict(),
        "freshness": _freshness(result),
        "sequential": asdict(result.sequential) if result.sequential else None,
        "consistency": result.consistency.to_dict() if result.consistency else None,
        "flakiness": result.flakiness.to_dict() if result.flakiness else None,
        "repair": result.repair.to_dict() if result.repair else None,
        "confusion": _confusion(result, run),
        "judge": _judge(result, run),
    }


def _label_scoring(result: CandidateResult) -> dict[str, Any]:
    """Label tasks: how most answers were scored, and how many answers each method scored."""
    counts = Counter(p.label_scoring for p in result.predictions if p.label_scoring)
    return {
        "label_scoring": counts.most_common(1)[0][0] if counts else None,
        "label_scoring_answers": dict(counts) or None,
    }


def _judge(result: CandidateResult, run: RunResult) -> dict[str, Any] | None:
    judge = run.task.judge
    if result.judge is None or judge is None or run.judge is None:
        return None
    model, remote = run.judge["model"], run.judge["remote"]
    return candidate_judgement(result.judge, judge, model, remote, price_list(run.task))


def _confusion(result: CandidateResult, run: RunResult) -> dict[str, Any] | None:
    output_format = run.task.contract.output_format
    if output_format.type != "label":
        return None
    outputs = [p.output for p in result.predictions]
    references = {e.id: e.output for e in run.test}
    gold = [references[p.example_id] for p in result.predictions]
    return confusion(outputs, gold, output_format.labels)


def _freshness(result: CandidateResult) -> dict[str, Any] | None:
    if result.freshness is None:
        return None
    return {
        "examples": len(result.freshness.predictions),
        "retrieves_updated_documents": result.freshness.retrieves,
        "metrics": {name: value.to_dict() for name, value in result.freshness.metrics.items()},
    }


def prediction_lines(run: RunResult) -> list[dict[str, Any]]:
    output_format = run.task.contract.output_format
    questions = list(run.knowledge.questions) if run.knowledge else []
    lines = []
    for result in (c for c in run.candidates if c.measured):
        asked = [("test", run.test, result.predictions)]
        if result.freshness is not None:
            asked.append(("updates", questions, result.freshness.predictions))
        for split, examples, predictions in asked:
            by_id = {e.id: e for e in examples}  # a candidate stopped early answered fewer
            for example, p in ((by_id[p.example_id], p) for p in predictions):
                lines.append(
                    {
                        "candidate": p.candidate,
                        "split": split,
                        "example_id": p.example_id,
                        "input": example.input,
                        "reference": example.output,
                        "output": p.output,
                        "scores": per_example(output_format, p.output, example.output) | p.graded,
                        "invalid_reason": validate(output_format, p.output),
                        "probabilities": p.probabilities,
                        "input_tokens": p.input_tokens,
                        "output_tokens": p.output_tokens,
                        "latency_ms": round(p.latency_ms, 3),
                        "compute_ms": round(p.compute_ms, 3) if p.compute_ms is not None else None,
                        "demo_ids": list(p.demo_ids),
                        "sources": list(p.sources),
                        "retrieved": list(p.retrieved),
                        "context_tokens": p.context_tokens,
                        "finish_reason": p.finish_reason,
                        "cached": p.cached,
                        "tokens_estimated": p.tokens_estimated,
                        "repairs": p.repairs,
                        "first_output": p.first_output,
                        "judge": p.verdict,
                    }
                )
    return lines


def task_document(run: RunResult) -> dict[str, Any]:
    """The task as the run used it, and each candidate's settings: what `tunewise serve` needs
    to rebuild a candidate exactly (data paths are absolute; no secrets are in a task)."""
    specs = run.specs
    return {
        "task": run.task.model_dump(mode="json", by_alias=True, exclude_unset=True),
        "candidates": {
            name: {
                "spec": spec.model_dump(mode="json", by_alias=True, exclude_unset=True),
                "model": model_for(spec, run.task, run.options),
            }
            for spec, name in zip(specs, (c.name for c in run.candidates), strict=True)
        },
    }


def write_run(run: RunResult, out: Path) -> Path:
    """Write the run folder under `out`; it appears complete or not at all."""
    out.mkdir(parents=True, exist_ok=True)
    run_id = new_run_id(run.task.name, out)
    staging = Path(tempfile.mkdtemp(prefix=f".{run_id}-", dir=out))
    try:
        with (staging / "predictions.jsonl").open("w", encoding="utf-8") as handle:
            for line in prediction_lines(run):
                handle.write(json.dumps(line, ensure_ascii=False) + "\n")
        (staging / "task.json").write_text(
            json.dumps(task_document(run), indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        for result in run.candidates:
            if result.setup.adapter:  # the run keeps its own copy for export and serve
                shutil.copytree(result.setup.adapter, staging / "adapters" / result.name)
        while True:
            document = results_document(run, run_id, out)
            (staging / "results.json").write_text(
                json.dumps(document, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
            )
            write_report(staging)  # report.html and report.md, from the files just written
            final = out / run_id
            try:
                os.rename(staging, final)  # fails if another run took the id meanwhile
                return final
            except OSError:
                if not final.exists():
                    raise
                run_id = new_run_id(run.task.name, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
