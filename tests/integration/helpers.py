"""Integration helpers: homes sharing one converted model; the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fresh_home(converted_home: Path, tmp_path: Path) -> Path:
    """An empty response cache and adapter cache that share the already converted model."""
    home = tmp_path / "home"
    home.mkdir(parents=True)
    (home / "models").symlink_to(converted_home / "models")
    return home


def environment(home: Path) -> dict[str, str]:
    return {**os.environ, "TUNEWISE_HOME": str(home), "HF_HUB_OFFLINE": "1"}


def tunewise(*args: str, home: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a fresh process, as a user would."""
    command = [sys.executable, "-m", "tunewise", *args]
    return subprocess.run(
        command, env=environment(home), capture_output=True, text=True, timeout=timeout
    )
