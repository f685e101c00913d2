"""Integration fixtures: the embedded model, converted once per test session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tunewise.models.local import embedded_model_folder

sys.path.insert(0, str(Path(__file__).parent))  # for `import helpers`


@pytest.fixture(scope="session")
def converted_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TUNEWISE_HOME holding the converted model, made once per test session."""
    home = tmp_path_factory.mktemp("embedded-home")
    embedded_model_folder(home)
    return home
