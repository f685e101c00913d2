"""Model spec string -> backend. Built-in backends register through the same hook as plugins."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from tunewise.errors import ModelError
from tunewise.models.backend import Backend
from tunewise.models.local import (
    EMBEDDED_NAME,
    LocalModel,
    embedded_model_folder,
    tunewise_home,
)

BackendFactory = Callable[[str], Backend]
"""Builds a backend from the part of the spec after its prefix (e.g. "ORG/NAME" for "hf:")."""

_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(prefix: str, factory: BackendFactory) -> None:
    """Make `PREFIX:REST` specs resolve through `factory(REST)`; a prefix registers once."""
    if not prefix or not prefix.replace("-", "").isalnum():
        raise ValueError(f"a backend prefix is letters, digits and '-', got {prefix!r}")
    if prefix in _FACTORIES:
        raise ValueError(f"backend prefix '{prefix}' is already registered")
    _FACTORIES[prefix] = factory


def unregister_backend(prefix: str) -> None:
    """Remove a registered prefix (tests and plugins that reload)."""
    _FACTORIES.pop(prefix, None)


def known_specs() -> list[str]:
    """Spec forms a user can write, for error messages and --help."""
    return [EMBEDDED_NAME, "hf:ORG/NAME", "PATH/TO/MODEL_FOLDER", *(f"{p}:..." for p in _FACTORIES)]


def load_backend(spec: str) -> Backend:
    """Resolve a model spec. Nothing heavy is loaded until the backend is first used."""
    home = tunewise_home()
    if spec == EMBEDDED_NAME:
        return LocalModel(spec, embedded_model_folder(home), home)
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _FACTORIES:
        return _FACTORIES[prefix](rest)
    if sep and prefix == "hf":
        return LocalModel(spec, _hub_folder(rest), home)
    folder = Path(spec).expanduser()
    if folder.is_dir() and (folder / "config.json").exists():
        return LocalModel(spec, folder.resolve(), home)
    raise ModelError(f"unknown model '{spec}'; use one of: {', '.join(known_specs())}")


def _hub_folder(repo_id: str) -> Path:
    """A Hugging Face Hub model, downloaded once into the Hub cache (needs network or the cache)."""
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(
                repo_id, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
            )
        )
    except Exception as exc:  # offline, gated, or no such repository
        raise ModelError(
            f"cannot get 'hf:{repo_id}' from the Hugging Face Hub ({type(exc).__name__}); "
            "download it where you have access and pass its folder path as the model instead"
        ) from None
