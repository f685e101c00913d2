"""8-shot label scoring on examples/review-sentiment: tunewise against lm-evaluation-harness.

Both sides score the same test examples, with the same rendered chat prompts (system prompt,
the task's 8 stratified demos, the input) and the same continuations (each label, then the
end-of-turn token), with the embedded model smollm2-135m-instruct on CPU. The prediction is the
label with the highest summed log-probability. Only scoring is timed, after each side has loaded
its model (load times are reported apart).

- tunewise: the product path, `LocalModel.score_labels` over the few-shot predictor's requests,
  in chunks of `batch_size` (it reuses the KV cache of the shared demo prefix).
- lm-eval 0.4.13: `HFLM.loglikelihood` (HF backend) over one `Instance` per (example, label),
  context = the prompt text tunewise renders, continuation = the decoded label tokens tunewise
  scores. lm-eval moves the context's trailing "\\n" into the continuation, so its continuation
  is ["\\n"] + tunewise's; the whole token sequence is identical (checked), and the extra term
  log P("\\n" | prompt) is the same for every label of an example, so argmaxes are comparable
  (the spread of that difference across labels is reported).

    .venv/bin/python bench/eval_vs_lm_eval.py [--limit N] [--dtype float32] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "examples" / "review-sentiment" / "task.yaml"


def cpu_model() -> str:
    """The CPU's model name (Linux), else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def argmax(values: Sequence[float]) -> int:
    """First index of the maximum (tunewise breaks ties the same way)."""
    return max(range(len(values)), key=lambda i: values[i])


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        os.fchmod(handle, 0o644)  # mkstemp's 0600 is private
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def warm_up(model: Any) -> None:
    """One tiny forward pass, so neither side's timing pays one-time kernel set-up."""
    import torch

    with torch.inference_mode():
        model(input_ids=torch.tensor([[1, 2, 3]], device=model.device))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="seeded stratified test subset")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    parser.add_argument(
        "--lm-eval-batch-size",
        default="4",
        help="HFLM batch_size, an integer or 'auto'; default 4: 2, 4 and 8 were equally fast on "
        "2 cores, 1 and 12 slower; 'auto' probes 64 on CPU",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the result as JSON here")
    args = parser.parse_args(argv)
    load_average = [round(x, 2) for x in os.getloadavg()]

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from tunewise.home import tunewise_home
    from tunewise.models.dtype import resolve_dtype
    from tunewise.models.local import LocalModel, embedded_model_folder
    from tunewise.strategies import PREPARERS
    from tunewise.strategies.few_shot import FewShotCandidate
    from tunewise.task.data import load_dataset, sample_examples, stratify_by_label
    from tunewise.task.loading import load_task

    # The same data, demos and --limit sample as `tunewise run ... --limit N`.
    task = load_task(TASK)
    dataset = load_dataset(
        task.data.train,
        task.data.test,
        task.contract.output_format,
        test_fraction=task.data.test_fraction,
        seed=task.seed,
    )
    test = dataset.test
    if args.limit is not None:
        stratify = stratify_by_label(task.contract.output_format)
        test = sample_examples(test, args.limit, task.seed, stratify)
    labels = list(task.contract.output_format.labels)
    spec = next(c for c in task.candidates if isinstance(c, FewShotCandidate))
    dtype = resolve_dtype(args.dtype)
    # Only the converted model folder comes from the home; the backend is called directly,
    # never through the response cache.
    home = tunewise_home()
    folder = embedded_model_folder(home)

    # --- tunewise: load, build requests, then time score_labels only.
    start = time.perf_counter()
    backend = LocalModel(task.model, folder, home, dtype=dtype)
    warm_up(backend.model)
    tw_load = time.perf_counter() - start
    predictor = PREPARERS["few-shot"](task, spec, dataset.train, backend, "few-shot")
    conversations = [predictor.request(example).messages for example in test]
    prompts = [backend.render(messages) for messages in conversations]
    prompt_ids = [backend.encode(prompt) for prompt in prompts]
    answers = [
        [backend.answer_ids(p, ids, lab) for lab in labels]
        for p, ids in zip(prompts, prompt_ids, strict=True)
    ]

    start = time.perf_counter()
    tw_scores = []
    for i in range(0, len(conversations), backend.batch_size):
        tw_scores.extend(backend.score_labels(conversations[i : i + backend.batch_size], labels))
    tw_seconds = time.perf_counter() - start
    tw_pred = [s.label for s in tw_scores]

    # --- lm-eval: load HFLM on the same folder, then time loglikelihood only.
    start = time.perf_counter()
    batch_size: int | str = args.lm_eval_batch_size
    batch_size = int(batch_size) if str(batch_size).isdigit() else batch_size
    lm = HFLM(pretrained=str(folder), dtype=dtype, device="cpu", batch_size=batch_size)
    warm_up(lm.model)
    lm_load = time.perf_counter() - start
    tokenizer = backend.tokenizer
    instances = [
        Instance(
            "loglikelihood",
            {"id": example.id},
            (prompt, tokenizer.decode(answer)),
            idx=j,
            metadata=("review-sentiment", n, 1),
        )
        for n, (example, prompt, per_label) in enumerate(zip(test, prompts, answers, strict=True))
        for j, answer in enumerate(per_label)
    ]

    # Token check (tokenization only): lm-eval's context + continuation must be exactly
    # tunewise's prompt + continuation, its continuation tunewise's after the moved whitespace.
    same, moved = 0, set()
    for n, instance in enumerate(instances):
        ctx, cont = lm._encode_pair(*instance.args)  # what loglikelihood() tokenizes with
        ids, answer = prompt_ids[n // len(labels)], answers[n // len(labels)][n % len(labels)]
        same += ctx + cont == ids + answer and len(ctx) <= len(ids)
        moved.add(tokenizer.decode(ids[len(ctx) :]))

    start = time.perf_counter()
    results = lm.loglikelihood(instances, disable_tqdm=True)
    lm_seconds = time.perf_counter() - start
    lm_logprobs = [
        [results[n * len(labels) + j][0] for j in range(len(labels))] for n in range(len(test))
    ]
    lm_pred = [labels[argmax(row)] for row in lm_logprobs]

    # tunewise reports probabilities; log-prob differences between labels are what must match.
    spread = 0.0
    for scores, row in zip(tw_scores, lm_logprobs, strict=True):
        tw_row = [scores.probabilities[lab] for lab in labels]
        diffs = [r - math.log(max(t, 1e-300)) for r, t in zip(row, tw_row, strict=True)]
        spread = max(spread, max(diffs) - min(diffs))

    gold = [example.output for example in test]
    n = len(test)
    agreement = sum(a == b for a, b in zip(tw_pred, lm_pred, strict=True)) / n
    tw_acc = sum(a == g for a, g in zip(tw_pred, gold, strict=True)) / n
    lm_acc = sum(a == g for a, g in zip(lm_pred, gold, strict=True)) / n
    command = shlex.join([".venv/bin/python", "bench/eval_vs_lm_eval.py", *sys.argv[1:]])
    result: dict[str, Any] = {
        "machine": {
            "cpu": cpu_model(),
            "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            # Other work on the cores skews both sides (tunewise's small steps the most).
            "load_average_at_start": load_average,
        },
        "command": command,
        "task": str(TASK.relative_to(ROOT)),
        "model": task.model,
        "dtype": dtype,
        "examples": n,
        "labels": labels,
        "demos": spec.k,
        "tokens": {
            "identical_sequences": f"{same}/{len(instances)}",
            "moved_into_lm_eval_continuation": sorted(moved),
            "max_logprob_difference_spread_across_labels": spread,
        },
        "tunewise": {
            "load_seconds": round(tw_load, 3),
            "seconds": round(tw_seconds, 3),
            "examples_per_second": round(n / tw_seconds, 3),
            "batch_size": backend.batch_size,
            "accuracy": round(tw_acc, 4),
        },
        "lm_eval": {
            "version": version("lm_eval"),
            "backend": "hf (HFLM.loglikelihood)",
            "batch_size": batch_size,
            "load_seconds": round(lm_load, 3),
            "seconds": round(lm_seconds, 3),
            "examples_per_second": round(n / lm_seconds, 3),
            "requests": len(instances),
            "accuracy": round(lm_acc, 4),
        },
        "speedup_tunewise_over_lm_eval": round(lm_seconds / tw_seconds, 2),
        "agreement": round(agreement, 4),
        "predictions": [
            {
                "id": e.id,
                "gold": g,
                "tunewise": a,
                "lm_eval": b,
                "tunewise_probabilities": {k: round(v, 6) for k, v in s.probabilities.items()},
                "lm_eval_logprobs": dict(zip(labels, [round(x, 5) for x in row], strict=True)),
            }
            for e, g, a, b, s, row in zip(
                test, gold, tw_pred, lm_pred, tw_scores, lm_logprobs, strict=True
            )
        ],
    }
    print_table(result)
    if args.out is not None:
        write_atomic(args.out, result)
    return 0


def print_table(r: dict[str, Any]) -> None:
    """A short Markdown table of the result."""
    m, tw, lm, tokens = r["machine"], r["tunewise"], r["lm_eval"], r["tokens"]
    rows = [
        ("machine", f"{m['cpu']}, {m['cores']} cores, torch {m['torch']}", ""),
        ("torch threads", str(m["torch_threads"]), ""),
        ("command", f"`{r['command']}`", ""),
        ("model, dtype, shots", f"{r['model']}, {r['dtype']}, {r['demos']}-shot", ""),
        ("N examples", str(r["examples"]), f"{lm['requests']} requests"),
        (
            "setting",
            f"score_labels, batch {tw['batch_size']}",
            f"lm-eval {lm['version']} HFLM.loglikelihood, batch {lm['batch_size']}",
        ),
        ("load + warm-up s (not timed)", f"{tw['load_seconds']:.2f}", f"{lm['load_seconds']:.2f}"),
        ("scoring s", f"{tw['seconds']:.2f}", f"{lm['seconds']:.2f}"),
        ("examples/s", f"{tw['examples_per_second']:.2f}", f"{lm['examples_per_second']:.2f}"),
        ("ratio (tunewise / lm-eval examples/s)", f"{r['speedup_tunewise_over_lm_eval']:.2f}x", ""),
        ("identical token sequences", tokens["identical_sequences"], ""),
        (
            "max label log-prob mismatch",
            f"{tokens['max_logprob_difference_spread_across_labels']:.1e}",
            "",
        ),
        ("prediction agreement", f"{100 * r['agreement']:.1f}%", ""),
        ("accuracy vs gold", f"{tw['accuracy']:.3f}", f"{lm['accuracy']:.3f}"),
    ]
    print("\n| | tunewise | lm-eval (HF backend) |\n|---|---|---|")
    for name, left, right in rows:
        print(f"| {name} | {left} | {right} |")


if __name__ == "__main__":
    raise SystemExit(main())
