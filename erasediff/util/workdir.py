"""The work folder: where state that outlives one step lives (resumable checkpoints, the local stores, scratch)."""

import os
from pathlib import Path

WORK_ENV = "ERASEDIFF_HOME"


def work_folder() -> Path:
    """$ERASEDIFF_HOME, else ./.erasediff (absolute, so steps agree whatever their working directory)."""
    return Path(os.environ.get(WORK_ENV, ".erasediff")).resolve()
