"""`tunewise export`: take a fine-tuned candidate out of a run, in the form the next tool wants.

- adapter: the PEFT adapter (adapter_model.safetensors + adapter_config.json), for PEFT users;
- merged: a full model folder with the adapter folded in, which plain transformers loads;
- openai-jsonl: the exact training conversations as OpenAI fine-tuning JSONL (`messages`).

A prompting candidate's prompt is exported by records/prompt_export.py.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

from tunewise.errors import TunewiseError
from tunewise.records.prompt_export import check_format, read_entry
from tunewise.schemas.run_candidate import CandidateRecord

ExportFormat = Literal["adapter", "merged", "openai-jsonl"]
ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")


def find_adapter(
    run_dir: Path, candidate: str, fmt: str = "adapter"
) -> tuple[CandidateRecord, Path]:
    """The candidate's entry in results.json and its adapter folder inside the run."""
    _, entry = read_entry(run_dir, candidate)
    check_format(entry, fmt)  # a prompting candidate is told its prompt formats
    folder = run_dir / str(entry.setup.adapter)
    missing = [name for name in ADAPTER_FILES if not (folder / name).exists()]
    if missing:
        raise TunewiseError(f"{folder}: the adapter is incomplete (missing {', '.join(missing)})")
    return entry, folder


def export(run_dir: Path, candidate: str, fmt: ExportFormat, out: Path) -> Path:
    """Write the export to `out` (a folder); it appears complete or not at all."""
    entry, adapter = find_adapter(run_dir, candidate, fmt)
    if out.exists():
        raise TunewiseError(f"{out}: already exists; choose a new --out folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        if fmt == "adapter":
            for name in (*ADAPTER_FILES, "training.json"):
                if (adapter / name).exists():
                    shutil.copy2(adapter / name, staging / name)
        elif fmt == "merged":
            _merge(entry, adapter, staging)
        else:
            _openai_jsonl(adapter, staging)
        os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _merge(entry: CandidateRecord, adapter: Path, staging: Path) -> None:
    from tunewise.models.local import LocalModel
    from tunewise.models.registry import load_backend

    base = load_backend(entry.params["base_model"])
    if not isinstance(base, LocalModel):
        raise TunewiseError(f"the base model '{base.spec}' is not a local model; cannot merge")
    merged = LocalModel(str(entry.model), base.folder, base.home, adapter=adapter)
    merged.model.save_pretrained(staging)
    merged.tokenizer.save_pretrained(staging)


def _openai_jsonl(adapter: Path, staging: Path) -> None:
    for split in ("train", "validation"):
        source = adapter / f"{split}.messages.jsonl"
        if not source.exists():
            raise TunewiseError(f"{source}: missing; re-run the candidate to record its data")
        shutil.copy2(source, staging / f"{split}.jsonl")
