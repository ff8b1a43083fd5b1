"""A model folder as content-addressed parts, so a registry stores each distinct piece once.

`pack` cuts every file of a diffusers folder into blobs named by their sha256: a safetensors file into its
header and one blob per tensor (in file order), any other file into 64 MiB chunks. Files are streamed: one part is
in memory at a time, so a multi-GB UNet is never read whole. What a version shares with the base or
with earlier versions (text encoder, tokenizer, VAE, scheduler, and the UNet tensors a preset froze) has the
same bytes, so the same name, and is stored once; a version adds only what it changed. The manifest lists
every file with its sha256 and its parts.

`unpack` writes the folder back byte for byte (a safetensors file is its header followed by its tensors'
bytes, so concatenating the parts in order restores it exactly) and checks every file against its recorded
sha256: lineage hashes stay valid, and a corrupt or missing part is refused rather than loaded.
"""

import hashlib
import json
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tqdm.auto import tqdm

from erasediff.util.atomic import atomic_dir
from erasediff.util.errors import ModelLoadError

PARTS_FILE = "erasediff_parts.json"
CHUNK = 64 << 20  # the largest piece of a file that is not a plain safetensors file


class Blobs(Protocol):
    """Where the parts live: a local folder (tests, the load cache) or an MLflow run (mlflow_adapters/blob_store.py)."""

    def has(self, sha: str) -> bool: ...

    def put(self, sha: str, data: bytes) -> None: ...

    def get(self, sha: str) -> bytes: ...


class FolderBlobs:
    """Blobs as files named by their sha256 under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def has(self, sha: str) -> bool:
        return (self.root / sha).is_file()

    def put(self, sha: str, data: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / f".{sha}.partial"
        partial.write_bytes(data)
        partial.replace(self.root / sha)  # two writers of one blob write the same bytes

    def get(self, sha: str) -> bytes:
        return (self.root / sha).read_bytes()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spans(path: Path) -> list[tuple[int, int]]:
    """The byte ranges a file is cut into: a safetensors file as [header, tensor, tensor, ...] when its tensors tile
    the data section; any other file in CHUNK-sized pieces. Only the header is read here."""
    total = path.stat().st_size
    whole = [(s, min(s + CHUNK, total)) for s in range(0, total, CHUNK)] or [(0, 0)]
    if path.suffix != ".safetensors" or total < 8:
        return whole
    with open(path, "rb") as handle:
        size = struct.unpack("<Q", handle.read(8))[0]
        if size > total - 8:
            return whole
        try:
            header = json.loads(handle.read(size))
        except (json.JSONDecodeError, UnicodeDecodeError):
            return whole
    if not isinstance(header, dict):
        return whole
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    start = 8 + size
    if [s for s, _ in spans] != [0] + [e for _, e in spans[:-1]] or (spans and start + spans[-1][1] != total):
        return whole  # not a plain tiling: plain chunks
    return [(0, start)] + [(start + s, start + e) for s, e in spans]


def pack(
    folder: Path,
    blobs: Blobs,
    skip: Callable[[Path], bool] = lambda _: False,
    counted: Callable[[Path], bool] = lambda _: True,
) -> tuple[dict, int]:
    """Put every part of `folder` that `blobs` lacks; returns the manifest and the bytes newly stored for the files
    `counted` selects. One part is in memory at a time (a tensor or a chunk), never a whole file."""
    folder = Path(folder)
    files, added = [], 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not skip(p)):
        parts, whole = [], hashlib.sha256()
        with open(path, "rb") as handle:
            for start, end in _spans(path):
                handle.seek(start)
                piece = handle.read(end - start)
                whole.update(piece)
                sha = _sha(piece)
                if not blobs.has(sha):
                    blobs.put(sha, piece)
                    added += len(piece) if counted(path) else 0
                parts.append(sha)
        files.append(
            {
                "path": path.relative_to(folder).as_posix(),
                "sha256": whole.hexdigest(),
                "bytes": path.stat().st_size,
                "parts": parts,
            }
        )
    return {"files": files, "bytes": sum(f["bytes"] for f in files)}, added


def unpack(manifest: dict, blobs: Blobs, out: Path, progress: bool = True) -> Path:
    """Write the folder of `manifest` at `out` (atomically), part by part, under one progress bar in bytes; every
    file must match its recorded sha256."""
    total = sum(entry.get("bytes", 0) for entry in manifest["files"])
    with (
        atomic_dir(Path(out), replace=True) as scratch,
        tqdm(total=total, unit="B", unit_scale=True, desc=f"rebuild {Path(out).name}", disable=not progress) as bar,
    ):
        for entry in manifest["files"]:
            target = scratch / entry["path"]
            if target.resolve().parent != scratch.resolve() and scratch.resolve() not in target.resolve().parents:
                raise ModelLoadError(f"part manifest names {entry['path']}, which leaves the model folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            whole = hashlib.sha256()
            with open(target, "wb") as handle:
                for sha in entry["parts"]:
                    try:
                        piece = blobs.get(sha)
                    except (OSError, KeyError) as exc:
                        raise ModelLoadError(f"a stored part of {entry['path']} cannot be read: {exc}") from exc
                    whole.update(piece)
                    handle.write(piece)
                    bar.update(len(piece))
            if whole.hexdigest() != entry["sha256"]:
                raise ModelLoadError(
                    f"{entry['path']} reassembled from its stored parts does not match its recorded sha256"
                )
    return Path(out)
