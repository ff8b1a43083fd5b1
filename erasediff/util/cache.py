"""Where trained artifacts are found: shipped inside the package (`erasediff/assets/`), or cached per user
($ERASEDIFF_CACHE, else ~/.cache/erasediff), keyed by a hash of what produced them.
"""

import os
from pathlib import Path

PACKAGED_ROOT = Path(__file__).parents[1] / "assets"


def default_cache_root() -> Path:
    return Path(os.environ.get("ERASEDIFF_CACHE", Path.home() / ".cache" / "erasediff"))
