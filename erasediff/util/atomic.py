"""Write a folder under a temporary name and rename it into place, so a failed run never leaves
a partial artifact that looks complete.
"""

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from erasediff.util.errors import ErasediffError


@contextmanager
def atomic_dir(target: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a scratch folder beside `target`; it becomes `target` only if the block succeeds."""
    target = Path(target)
    if target.exists() and not replace:
        raise ErasediffError(f"refusing to overwrite existing {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    try:
        yield scratch
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    if target.exists():
        shutil.rmtree(target)
    scratch.rename(target)
