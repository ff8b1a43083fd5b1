"""The work folder: where state that outlives one step lives (resumable checkpoints, the local stores, scratch)."""

import atexit
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

WORK_ENV = "ERASEDIFF_HOME"


def work_folder() -> Path:
    """$ERASEDIFF_HOME, else ./.erasediff (absolute, so steps agree whatever their working directory)."""
    return Path(os.environ.get(WORK_ENV, ".erasediff")).resolve()


SCRATCH_ENV = "ERASEDIFF_SCRATCH"


def scratch_dir(prefix: str) -> Path:
    """A new folder for one step's intermediate files: inside the run's scratch folder when a runner set one
    (it removes the whole folder when the run ends, however it ends). Else (a step started by ZenML's own CLI, or
    in a Kubernetes pod) in the system's temp folder, removed when the process exits: a step's output is copied
    into the artifact store before that, and a failed step's is of no use."""
    root = os.environ.get(SCRATCH_ENV)
    if root:
        Path(root).mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=prefix, dir=root))
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return folder


@contextmanager
def run_scratch(workdir: Path) -> Iterator[Path]:
    """The scratch folder of one run, under the work folder, removed on success and on failure alike."""
    folder = Path(workdir) / "scratch" / uuid.uuid4().hex[:16]
    previous = os.environ.get(SCRATCH_ENV)
    os.environ[SCRATCH_ENV] = str(folder)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if previous is None:
            os.environ.pop(SCRATCH_ENV, None)
        else:
            os.environ[SCRATCH_ENV] = previous
