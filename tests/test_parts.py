"""A model folder as content-addressed parts (erasediff/storage/parts.py): rebuilt byte for byte, stored once,
checked."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from erasediff.defaults.text_digits import text_digits_default
from erasediff.storage.parts import FolderBlobs, pack, unpack
from erasediff.util.errors import ModelLoadError
from erasediff.util.hashing import folder_hash

UNET = "unet/diffusion_pytorch_model.safetensors"


def test_a_folder_comes_back_byte_for_byte(tmp_path: Path) -> None:
    base = text_digits_default(progress=False)
    blobs = FolderBlobs(tmp_path / "blobs")
    manifest, added = pack(base, blobs)
    assert added == manifest["bytes"] > 0  # an empty store takes everything
    unet = next(f for f in manifest["files"] if f["path"] == UNET)
    assert len(unet["parts"]) > 10  # header + one part per tensor
    assert folder_hash(unpack(manifest, blobs, tmp_path / "out")) == folder_hash(base)


def test_a_second_version_stores_only_the_tensors_it_changed(tmp_path: Path) -> None:
    base = text_digits_default(progress=False)
    blobs = FolderBlobs(tmp_path / "blobs")
    pack(base, blobs)
    changed = Path(shutil.copytree(base, tmp_path / "changed"))
    state = load_file(changed / UNET)
    name = sorted(state)[0]
    state[name] = state[name] + 1
    save_file(state, changed / UNET, metadata={"format": "pt"})
    manifest, added = pack(changed, blobs)
    assert (
        added == state[name].numel() * state[name].element_size()
    )  # one tensor's bytes: everything else was stored before
    assert folder_hash(unpack(manifest, blobs, tmp_path / "out")) == folder_hash(changed)


def test_a_corrupt_part_or_a_path_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    base = text_digits_default(progress=False)
    blobs = FolderBlobs(tmp_path / "blobs")
    manifest, _ = pack(base, blobs)
    escape = json.loads(json.dumps(manifest))
    escape["files"][0]["path"] = "../outside.json"
    with pytest.raises(ModelLoadError, match="leaves the model folder"):
        unpack(escape, blobs, tmp_path / "out")
    assert not (tmp_path / "outside.json").exists()
    (tmp_path / "blobs" / manifest["files"][0]["parts"][0]).write_bytes(b"tampered")
    with pytest.raises(ModelLoadError, match="does not match its recorded sha256"):
        unpack(manifest, blobs, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # nothing partial is left looking complete


def test_files_are_packed_and_unpacked_a_part_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming: a file far larger than a part never sits in memory whole, on the way in or out."""
    import tracemalloc

    import erasediff.storage.parts as parts

    monkeypatch.setattr(parts, "CHUNK", 1 << 16)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(bytes(range(256)) * (32 << 10))  # 8 MiB, not safetensors: chunked
    save_file({f"t{i}": torch.randn(64, 64) for i in range(64)}, folder / "unet.safetensors")  # 64 tensors, 1 MiB
    blobs = FolderBlobs(tmp_path / "blobs")
    tracemalloc.start()
    manifest, _ = pack(folder, blobs)
    _, packing_peak = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    unpack(manifest, blobs, tmp_path / "out")
    _, unpacking_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert max(packing_peak, unpacking_peak) < 1 << 20  # an 8 MiB file went through less than 1 MiB of memory
    chunks = next(f for f in manifest["files"] if f["path"] == "weights.bin")["parts"]
    assert len(chunks) == 128 and len(set(chunks)) == 1  # equal chunks are one part
    assert folder_hash(tmp_path / "out") == folder_hash(folder)
