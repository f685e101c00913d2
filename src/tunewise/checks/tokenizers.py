"""A model spec's tokenizer and config, loaded the way the local backend loads them, without
ever loading weights. Specs that are not local models (API endpoints) have no tokenizer here."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tunewise.home import tunewise_home
from tunewise.models.local import LocalModel
from tunewise.models.registry import known_specs, load_backend
from tunewise.models.weights import EMBEDDED_GGUF, EMBEDDED_NAME, embedded_package

if TYPE_CHECKING:
    from tunewise.task.config import ModelEndpoint


@dataclass(frozen=True)
class LoadedTokenizer:
    """A model's tokenizer and config, and where they came from (for the report)."""

    spec: str
    source: str
    tokenizer: Any
    config: Any


def load_tokenizer(spec: str, models: Mapping[str, ModelEndpoint]) -> LoadedTokenizer | str:
    """The spec's tokenizer, or why there is none (a string). Unknown specs raise ModelError,
    as `tunewise run` does."""
    from transformers import AutoConfig, AutoTokenizer

    prefix, sep, rest = spec.partition(":")
    # Endpoints and other registered backends are not built: they may want keys or a server.
    registered = bool(sep) and any(form.startswith(f"{prefix}:") for form in known_specs())
    if spec in models or (registered and prefix != "hf"):
        return "not a local model: its tokenizer is not available here"
    if spec == EMBEDDED_NAME:
        folder = tunewise_home() / "models" / EMBEDDED_NAME
        if not (folder / "config.json").exists():
            # Not converted yet: converting loads the weights, so read the GGUF file's tokenizer
            # and config instead (conversion saves this same tokenizer).
            package = embedded_package()
            tokenizer = AutoTokenizer.from_pretrained(package, gguf_file=EMBEDDED_GGUF)
            config = AutoConfig.from_pretrained(package, gguf_file=EMBEDDED_GGUF)
            return LoadedTokenizer(spec, str(package / EMBEDDED_GGUF), tokenizer, config)
        backend: Any = LocalModel(spec, folder, tunewise_home())
    elif sep and prefix == "hf":
        # The backend would download weights too; the tokenizer and config files are enough.
        try:
            tokenizer = AutoTokenizer.from_pretrained(rest)
            config = AutoConfig.from_pretrained(rest)
        except Exception as exc:  # offline, gated, or no such repository
            return f"cannot get the tokenizer of '{spec}' ({type(exc).__name__})"
        return LoadedTokenizer(spec, f"hf:{rest}", tokenizer, config)
    else:
        backend = load_backend(spec, models)  # a model folder; unknown specs raise
    if not isinstance(backend, LocalModel):
        return "not a local model: its tokenizer is not available here"
    config = AutoConfig.from_pretrained(backend.folder)
    return LoadedTokenizer(spec, str(backend.folder), backend.tokenizer, config)
