"""The same LoRA training done by tunewise and by TRL's SFTTrainer + PEFT, side by side.

Same model (the embedded SmolLM2-135M-Instruct, float32), same token sequences (tunewise's
`encode_example`: chat-template prompt, loss on the answer + end-of-turn only; TRL gets the
rendered prompt and the answer + EOS as a prompt-completion pair, and the script checks that TRL
tokenizes them into exactly the same input ids and labels), same LoRA config and hyperparameters.

Each side trains in its own subprocess, so peak RSS is measured separately. Time = the training
loop only (tunewise's own loop timer; `trainer.train()` for TRL), after model load. Both sides
run one validation pass per epoch inside that time, and neither checkpoints. The final
validation loss is computed afterwards by one shared function on each side's saved adapter.

    .venv/bin/python bench/train_vs_trl.py [--train N] [--validation M] [--epochs E] [--bf16]
        [--out F]

`--bf16` trains both sides under bfloat16 autocast (float32 master weights): tunewise's
`TrainingConfig.bf16`, TRL's `bf16=True`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TASK = ROOT / "examples" / "review-sentiment" / "task.yaml"
IGNORE = -100
# What each side does besides the shared recipe; printed and written with the numbers.
SETTINGS_NOTE = {
    "evaluation": "one validation pass per epoch on both sides, inside the timed loop; "
    "tunewise early stopping disabled (patience > evaluations)",
    "checkpoints": "none on either side (tunewise checkpoint_every > steps, TRL "
    "save_strategy=no); tunewise saves its best adapter at each improving validation pass",
    "batching": "dynamic padding on both (tunewise left-pads, TRL right-pads); both group by "
    "length (tunewise windows of 16 batches; TRL train_sampling_strategy=group_by_length)",
    "optimizer": "AdamW(weight_decay=0.01), no gradient clipping (TRL max_grad_norm=0), "
    "no gradient checkpointing, float32 weights; mixed precision only with --bf16 "
    "(bfloat16 autocast on both sides)",
    "published_adapter": "tunewise: best validation pass; TRL: final weights "
    "(the same with 1 epoch)",
}


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports kilobytes)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_json(path: Path, data: Any) -> None:
    """Atomically: a sibling temp file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


# --- the shared recipe, built once by the parent -------------------------------------------


def private_home(work: Path) -> Path:
    """A fresh TUNEWISE_HOME whose models/ is the already converted one, when there is one."""
    home = work / "home"
    home.mkdir()
    existing = Path.home() / ".cache" / "tunewise" / "models"
    if existing.is_dir():
        (home / "models").symlink_to(existing)
    return home


def build_spec(n_train: int, n_validation: int, epochs: int, bf16: bool) -> dict[str, Any]:
    """Model folder, training config and the encoded train/validation sequences."""
    from tunewise.finetune.examples import encode_example, lint_sequences, lint_template
    from tunewise.finetune.train import TrainingConfig
    from tunewise.models.local import EMBEDDED_NAME, LocalModel, embedded_model_folder
    from tunewise.strategies.lora import LoraCandidate
    from tunewise.strategies.lora.adapter import short_prompt
    from tunewise.task.data import read_examples, sample_examples, stratify_by_label
    from tunewise.task.loading import load_task

    task = load_task(TASK)
    assert task.data.test is not None
    fmt = task.contract.output_format
    stratify = stratify_by_label(fmt)
    train = sample_examples(read_examples(task.data.train, fmt), n_train, task.seed, stratify)
    held = sample_examples(read_examples(task.data.test, fmt), n_validation, task.seed, stratify)
    # LoraCandidate defaults, with one validation pass per epoch, no early stop, no checkpoints.
    candidate = LoraCandidate(
        strategy="lora",
        epochs=epochs,
        evaluations_per_epoch=1,
        early_stopping_patience=epochs + 1,
        checkpoint_every=10**9,
    )
    from tunewise.strategies.lora import LORA

    config = TrainingConfig.from_candidate(candidate, task.seed, LORA, bf16=bf16)
    home = Path(os.environ["TUNEWISE_HOME"])
    model = LocalModel(EMBEDDED_NAME, embedded_model_folder(home), home)
    prompt = short_prompt(task)
    lint_template(model, prompt(train[0]), train[0])
    eos = model.tokenizer.eos_token or ""

    def encode(examples: list[Any]) -> list[dict[str, Any]]:
        rows = []
        for example in examples:
            seq = encode_example(model, prompt(example), example)
            if len(seq.input_ids) <= candidate.max_length:  # as tunewise: longer ones left out
                rows.append(
                    {
                        "id": seq.example_id,
                        "input_ids": list(seq.input_ids),
                        "labels": list(seq.labels),
                        "prompt": model.render(prompt(example)),
                        "completion": example.output + eos,
                    }
                )
        return rows

    train_rows, validation_rows = encode(train), encode(held)
    lint_sequences(
        [_sequence(r) for r in train_rows + validation_rows], model.tokenizer.eos_token_id
    )
    return {
        "model_folder": str(model.folder),
        "pad_id": model.tokenizer.pad_token_id,
        "config": asdict(config),
        "max_length": candidate.max_length,
        "left_out_too_long": len(train) + len(held) - len(train_rows) - len(validation_rows),
        "train": train_rows,
        "validation": validation_rows,
    }


def _sequence(row: dict[str, Any]) -> Any:
    from tunewise.finetune.examples import TrainingSequence

    return TrainingSequence(row["id"], tuple(row["input_ids"]), tuple(row["labels"]))


# --- the two sides, each in its own process ------------------------------------------------


def run_tunewise(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """The product path: train_adapter on encode_example sequences."""
    import torch

    from tunewise.finetune.train import TrainingConfig, train_adapter

    config = TrainingConfig(**spec["config"])
    train = [_sequence(r) for r in spec["train"]]
    validation = [_sequence(r) for r in spec["validation"]]
    record = train_adapter(
        Path(spec["model_folder"]),
        train,
        validation,
        config,
        out,
        out.with_name(out.name + ".work"),
        spec["pad_id"],
    )
    return {
        "seconds": record["seconds"],  # the loop only: started after model load and prepare()
        "optimizer_steps": record["steps"],
        "own_validation_loss": record["best_validation_loss"],
        "best_step": record["best_step"],
        "torch_threads": torch.get_num_threads(),
    }


def run_trl(spec: dict[str, Any], out: Path) -> dict[str, Any]:
    """SFTTrainer + PEFT with the same recipe, on prompt-completion pairs (completion-only loss)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import SFTConfig, SFTTrainer

    c = spec["config"]
    folder = spec["model_folder"]
    set_seed(c["seed"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if tokenizer.pad_token is None:  # what tunewise does too
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    n = len(spec["train"])
    # Optimizer steps as tunewise counts them (the last, short batch included).
    steps = math.ceil(math.ceil(n / c["batch_size"]) / c["gradient_accumulation"]) * c["epochs"]

    def dataset(rows: list[dict[str, Any]]) -> Dataset:
        return Dataset.from_list(
            [{"id": r["id"], "prompt": r["prompt"], "completion": r["completion"]} for r in rows]
        )

    args = SFTConfig(
        output_dir=str(out.with_name(out.name + ".work")),
        per_device_train_batch_size=c["batch_size"],
        per_device_eval_batch_size=c["batch_size"],
        gradient_accumulation_steps=c["gradient_accumulation"],
        learning_rate=c["learning_rate"],
        lr_scheduler_type=c["scheduler"],
        warmup_steps=round(c["warmup_ratio"] * steps),  # as tunewise rounds it
        num_train_epochs=c["epochs"],
        max_length=spec["max_length"],
        seed=c["seed"],
        completion_only_loss=True,
        train_sampling_strategy="group_by_length",
        optim="adamw_torch",
        weight_decay=0.01,  # torch.optim.AdamW's default, which tunewise uses
        max_grad_norm=0.0,  # tunewise does not clip
        gradient_checkpointing=False,  # TRL's default is True; tunewise does not checkpoint
        bf16=c["bf16"],
        use_cpu=True,
        report_to=[],
        eval_strategy="epoch",
        save_strategy="no",
        logging_steps=10,
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    lora = LoraConfig(
        r=c["r"],
        lora_alpha=c["alpha"],
        lora_dropout=c["dropout"],
        target_modules=c["target_modules"],
        task_type="CAUSAL_LM",
    )
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=dataset(spec["train"]),
        eval_dataset=dataset(spec["validation"]),
        processing_class=tokenizer,
        peft_config=lora,
    )
    for split, prepared in (("train", trainer.train_dataset), ("validation", trainer.eval_dataset)):
        same_tokens(spec[split], prepared)
    started = time.perf_counter()
    output = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(out))  # the adapter only
    evals = [e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e]
    return {
        "seconds": round(seconds, 2),
        "optimizer_steps": output.global_step,
        "own_validation_loss": round(evals[-1], 5) if evals else None,
        "torch_threads": torch.get_num_threads(),
    }


def same_tokens(rows: list[dict[str, Any]], prepared: Any) -> None:
    """TRL must train on exactly tunewise's input ids and loss positions."""
    expected = {r["id"]: (r["input_ids"], r["labels"]) for r in rows}
    got = {
        i: (ids, labels)
        for i, ids, labels in zip(
            *(prepared[k] for k in ("id", "input_ids", "labels")), strict=True
        )
    }
    differ = [i for i in expected if got.get(i) != expected[i]]
    if differ or len(got) != len(expected):
        raise SystemExit(f"TRL tokenized {len(differ)} of {len(expected)} examples differently")


def child(side: str, spec_path: Path, result_path: Path) -> None:
    spec = json.loads(spec_path.read_text(encoding="utf-8"))
    out = result_path.with_name(f"{side}-adapter")
    result = (run_tunewise if side == "tunewise" else run_trl)(spec, out)
    result["peak_rss_mb"] = peak_rss_mb()  # the whole child: imports, load, data, training
    result["adapter"] = str(out)
    write_json(result_path, result)


# --- the shared evaluation and the report --------------------------------------------------


def answer_loss(folder: str, adapter: str | None, rows: list[dict[str, Any]]) -> float:
    """Mean token cross-entropy on the answer (+ end-of-turn) tokens, one unpadded sequence at a
    time, on the base model with `adapter` loaded (or the bare base model)."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    if adapter is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1].float()
            targets = torch.tensor(row["labels"][1:])
            total += float(F.cross_entropy(logits, targets, ignore_index=IGNORE, reduction="sum"))
            count += int((targets != IGNORE).sum())
    return total / count


def machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        # Other work on the cores skews both sides' times: 1-minute load average at the end.
        "load_average": round(os.getloadavg()[0], 2),
    }


def versions() -> dict[str, str]:
    from importlib.metadata import version

    names = ("tunewise", "torch", "transformers", "trl", "peft", "accelerate")
    return {name: version(name) for name in names}


def table(result: dict[str, Any]) -> str:
    tw, trl, loss = result["tunewise"], result["trl"], result["validation_loss"]
    s = result["settings"]
    c = s["config"]
    rows = [
        ("training loop (s)", tw["seconds"], trl["seconds"]),
        ("training examples/s", tw["examples_per_s"], trl["examples_per_s"]),
        ("optimizer steps", tw["optimizer_steps"], trl["optimizer_steps"]),
        ("peak RSS (MB, whole child process)", tw["peak_rss_mb"], trl["peak_rss_mb"]),
        ("final validation loss (shared function)", loss["tunewise"], loss["trl"]),
        (
            "own validation loss (as each reports it)",
            tw["own_validation_loss"],
            trl["own_validation_loss"],
        ),
        ("torch threads", tw["torch_threads"], trl["torch_threads"]),
    ]
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores (load average {m['load_average']}); "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()),
        f"Command: `{result['command']}`",
        f"Data: {s['train_examples']} train / {s['validation_examples']} validation "
        f"conversations of examples/review-sentiment ({s['left_out_too_long']} left out as too "
        f"long); LoRA r={c['r']} alpha={c['alpha']} dropout={c['dropout']} "
        f"targets={c['target_modules']}; lr {c['learning_rate']} {c['scheduler']}, warmup "
        f"{c['warmup_ratio']}, {c['epochs']} epoch(s), batch {c['batch_size']} x accumulation "
        f"{c['gradient_accumulation']}, max length {s['max_length']}, seed {c['seed']}, "
        f"{'bfloat16 autocast' if c['bf16'] else 'float32'}",
        "",
        "| | tunewise | TRL SFTTrainer |",
        "|---|---|---|",
        *(f"| {name} | {a} | {b} |" for name, a, b in rows),
        "",
        f"Speed ratio (tunewise / TRL examples/s): **{result['ratio_examples_per_s']}**; "
        f"base model without adapter: validation loss {loss['base']}.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=200, help="training conversations")
    parser.add_argument("--validation", type=int, default=50, help="validation conversations")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--bf16", action="store_true", help="bfloat16 autocast on both sides")
    parser.add_argument("--out", type=Path, help="write the results JSON here")
    parser.add_argument("--child", choices=("tunewise", "trl"), help=argparse.SUPPRESS)
    parser.add_argument("--spec", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.spec, args.result)
        return

    executable = Path(sys.executable)
    shown = (
        executable.relative_to(Path.cwd()) if executable.is_relative_to(Path.cwd()) else executable
    )
    command = shlex.join([str(shown), *sys.argv])
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix="train-vs-trl-") as tmp:
        work = Path(tmp)
        os.environ["TUNEWISE_HOME"] = str(private_home(work))  # children inherit it
        spec = build_spec(args.train, args.validation, args.epochs, args.bf16)
        spec_path = work / "spec.json"
        write_json(spec_path, spec)
        sides: dict[str, dict[str, Any]] = {}
        for side in ("tunewise", "trl"):
            print(f"== training with {side} ...", file=sys.stderr, flush=True)
            result_path = work / f"{side}.json"
            cmd = [sys.executable, __file__, "--child", side, "--spec", str(spec_path)]
            subprocess.run([*cmd, "--result", str(result_path)], stdout=sys.stderr, check=True)
            sides[side] = json.loads(result_path.read_text(encoding="utf-8"))
        print("== evaluating both adapters ...", file=sys.stderr, flush=True)
        folder, rows = spec["model_folder"], spec["validation"]
        loss = {
            "base": round(answer_loss(folder, None, rows), 5),
            **{s: round(answer_loss(folder, sides[s]["adapter"], rows), 5) for s in sides},
        }
    trained = len(spec["train"]) * args.epochs
    for result in sides.values():
        result["examples_per_s"] = round(trained / result["seconds"], 2)
        del result["adapter"]
    result = {
        "machine": machine(),
        "command": command,
        "versions": versions(),
        "settings": {
            "config": spec["config"],
            "max_length": spec["max_length"],
            "train_examples": len(spec["train"]),
            "validation_examples": len(rows),
            "left_out_too_long": spec["left_out_too_long"],
            **SETTINGS_NOTE,
        },
        "tunewise": sides["tunewise"],
        "trl": sides["trl"],
        "ratio_examples_per_s": round(
            sides["tunewise"]["examples_per_s"] / sides["trl"]["examples_per_s"], 2
        ),
        "validation_loss": loss,
    }
    if args.out:
        write_json(args.out, result)
    print(table(result))


if __name__ == "__main__":
    main()
