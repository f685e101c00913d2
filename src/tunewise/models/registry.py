"""Model spec string -> backend. `PREFIX:REST` specs resolve through the backends declared
under the `tunewise.backends` entry-point group (tunewise's own in pyproject.toml, a plugin's in
its own), each a factory `REST -> Backend`; register_backend adds one at run time."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING

from tunewise.errors import ModelError
from tunewise.home import tunewise_home
from tunewise.models.backend import Backend
from tunewise.models.dtype import resolve_dtype
from tunewise.models.local import LocalModel
from tunewise.models.weights import EMBEDDED_NAME, embedded_model_folder

if TYPE_CHECKING:
    from tunewise.task.config import ModelEndpoint

BackendFactory = Callable[[str], Backend]
"""Builds a backend from the part of the spec after its prefix (e.g. "ORG/NAME" for "hf:")."""

ENTRY_POINTS = "tunewise.backends"
_FACTORIES: dict[str, BackendFactory] = {}
_declared: dict[str, metadata.EntryPoint] = {}  # prefix -> entry point, loaded on first use


def _declarations() -> dict[str, metadata.EntryPoint]:
    if not _declared:
        _declared.update({e.name: e for e in metadata.entry_points(group=ENTRY_POINTS)})
    return _declared


def _factory(prefix: str) -> BackendFactory | None:
    if prefix not in _FACTORIES and prefix in _declarations():
        entry = _declarations()[prefix]
        try:
            _FACTORIES[prefix] = entry.load()
        except Exception as exc:  # a broken plugin is named, not a traceback
            message = f"backend plugin '{prefix}' ({entry.value}) failed to load: {exc}"
            raise ModelError(message) from exc
    return _FACTORIES.get(prefix)


def register_backend(prefix: str, factory: BackendFactory) -> None:
    """Make `PREFIX:REST` specs resolve through `factory(REST)`; a prefix registers once."""
    if not prefix or not prefix.replace("-", "").isalnum():
        raise ValueError(f"a backend prefix is letters, digits and '-', got {prefix!r}")
    if prefix in _FACTORIES or prefix in _declarations():
        raise ValueError(f"backend prefix '{prefix}' is already registered")
    _FACTORIES[prefix] = factory


def unregister_backend(prefix: str) -> None:
    """Remove a prefix registered at run time (tests and plugins that reload)."""
    _FACTORIES.pop(prefix, None)


def known_specs() -> list[str]:
    """Spec forms a user can write, for error messages and --help."""
    return [
        EMBEDDED_NAME,
        "hf:ORG/NAME",
        "PATH/TO/MODEL_FOLDER",
        "openai:MODEL",
        "openai-compatible:MODEL@BASE_URL",
        "a name from the task's models: section",
        *(f"{p}:..." for p in {*_declarations(), *_FACTORIES} if not p.startswith("openai")),
    ]


def load_backend(
    spec: str, models: Mapping[str, ModelEndpoint] | None = None, *, dtype: str = "float32"
) -> Backend:
    """Resolve a model spec, or a name from the task's `models:` section. Nothing heavy is loaded
    until the backend is first used. `dtype` applies to local models ("auto" picks bfloat16
    where it pays: see models.dtype)."""
    if models and spec in models:
        return _endpoint_backend(spec, models[spec])
    home = tunewise_home()
    prefix, sep, rest = spec.partition(":")
    if sep and (factory := _factory(prefix)) is not None:
        return factory(rest)
    if spec == EMBEDDED_NAME:
        folder = embedded_model_folder(home)
    elif sep and prefix == "hf":
        folder = _hub_folder(rest)
    else:
        folder = Path(spec).expanduser().resolve()
        if not (folder.is_dir() and (folder / "config.json").exists()):
            raise ModelError(f"unknown model '{spec}'; use one of: {', '.join(known_specs())}")
    return LocalModel(spec, folder, home, dtype=resolve_dtype(dtype))


def _endpoint_backend(name: str, config: ModelEndpoint) -> Backend:
    from tunewise.models.openai_compat import OPENAI_BASE_URL, Endpoint, OpenAICompatible

    key_env = config.api_key_env
    if key_env is None and config.base_url.rstrip("/") == OPENAI_BASE_URL:
        key_env = "OPENAI_API_KEY"
    endpoint = Endpoint(
        model=config.model,
        base_url=config.base_url.rstrip("/"),
        api_key_env=key_env,
        concurrency=config.concurrency,
        timeout_s=config.timeout_s,
        deadline_s=config.deadline_s,
        max_retries=config.max_retries,
    )
    return OpenAICompatible(name, endpoint)


def openai_backend(rest: str) -> Backend:
    """`openai:MODEL`: OpenAI's API, with OPENAI_API_KEY."""
    from tunewise.models.openai_compat import OpenAICompatible, parse_spec

    return OpenAICompatible(f"openai:{rest}", parse_spec("openai", rest))


def openai_compatible_backend(rest: str) -> Backend:
    """`openai-compatible:MODEL@BASE_URL`: any server that speaks OpenAI's /v1 API."""
    from tunewise.models.openai_compat import OpenAICompatible, parse_spec

    return OpenAICompatible(f"openai-compatible:{rest}", parse_spec("openai-compatible", rest))


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
