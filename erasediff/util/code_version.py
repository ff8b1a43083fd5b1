"""The code version recorded in lineage: the git commit (marked dirty when the tree has changes); where there is no
git checkout (the container image drops .git), the commit baked in at build time ($ERASEDIFF_CODE_VERSION, set by
deploy/Dockerfile's CODE_VERSION); else the package version."""

import os
import subprocess
from pathlib import Path

from erasediff import __version__

BAKED = "ERASEDIFF_CODE_VERSION"


def code_version() -> str:
    root = Path(__file__).resolve().parents[2]
    baked = os.environ.get(BAKED, "")
    fallback = baked if baked and baked != "unknown" else f"erasediff {__version__}"
    if not (root / ".git").exists():
        return fallback
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
        return fallback
    return f"git:{commit}{'-dirty' if dirty else ''}"
