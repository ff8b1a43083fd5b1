"""The code version recorded in lineage: the git commit (marked dirty when the tree has changes), else the package
version."""

import subprocess
from pathlib import Path

from erasediff import __version__


def code_version() -> str:
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return f"erasediff {__version__}"
    return f"git:{commit}{'-dirty' if dirty else ''}"
