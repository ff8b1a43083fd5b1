"""Content hashes: they key caches, tag lineage and prove a base model folder was left untouched."""

import hashlib
import json
from pathlib import Path
from typing import Any

import torch


def config_hash(config: Any, length: int = 12) -> str:
    """Short sha256 of a JSON-serialisable config, independent of key order."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:length]


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def folder_hash(folder: Path) -> str:
    """sha256 over every file's relative path and content, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(file_hash(path).encode())
    return digest.hexdigest()


def tensors_hash(state: dict[str, torch.Tensor]) -> str:
    """sha256 over every tensor's name and raw bytes: equal only for bit-identical weights (data-parallel ranks)."""
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
