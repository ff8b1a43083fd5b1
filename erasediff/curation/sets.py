"""Materialise the forget and retain sets as image files with a manifest of content hashes.

The manifest is what gets validated, hashed into lineage and read back by unlearning: one row per
image with its set, file, label (class requests) or caption and generation seed (concept requests), decoded shape,
dtype, pixel range and two hashes (of the decoded
pixels, so a re-encoded copy is still the same image, and of the file bytes). Unreadable files are
kept as rows with `readable = False`, so validation can name them instead of skipping them.
"""

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import LabeledImages
from erasediff.data.images import open_image, save_png
from erasediff.util.errors import DataError
from erasediff.util.hashing import config_hash, file_hash

DIGITS = "digits"


LABELS_FILE = "labels.csv"


MANIFEST = "manifest.csv"


SETS = ("forget", "retain")


def _digits_subset(
    name: str, forget_classes: list[int], size: int, retain_excluded: list[int], split_seed: int
) -> LabeledImages:
    train, _ = load_digits_split(size, seed=split_seed)
    if name == "forget":
        return train.where(torch.isin(train.labels, torch.tensor(forget_classes)))
    return train.where(~torch.isin(train.labels, torch.tensor(forget_classes + retain_excluded)))


def _write_digits(data: LabeledImages, folder: Path) -> list[dict]:
    rows = []
    for i, (image, label) in enumerate(zip(data.images, data.labels.tolist())):
        save_png(image, folder / f"{i:05d}.png")
        rows.append({"file": f"{i:05d}.png", "label": label})
    return rows


def inside(folder: Path, name: str) -> Path | None:
    """`folder/name` when reading it stays inside `folder`; None for an absolute path, a `..`, or a symbolic link
    anywhere on the way (a data folder's table must not make curation read, hash or train on files elsewhere)."""
    relative = Path(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        return None
    path = Path(folder)
    for part in relative.parts:
        path = path / part
        if path.is_symlink():
            return None
    return path if path.resolve().is_relative_to(Path(folder).resolve()) else None


def outside_row(name: str) -> dict:
    """The manifest row of a table entry that leaves its folder: nothing is read; the GX suite names the row."""
    return {"file": name, "inside_folder": False}


def read_table(folder: Path, table_name: str, columns: list[str]) -> pd.DataFrame:
    """A data folder's CSV (labels.csv, captions.csv), every cell as text; one error line when it is missing or
    malformed."""
    path = Path(folder) / table_name
    if not path.is_file():
        raise DataError(f"data folder {folder} has no {table_name} (columns: {','.join(columns)})")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot parse {path}: {str(exc).splitlines()[0]}") from exc
    if list(table.columns[: len(columns)]) != columns:
        raise DataError(f"{path} must start with the columns {','.join(columns)}; found {list(table.columns)}")
    return table


def _label(value: str, labels_csv: Path, line: int, file: str) -> int | None:
    if not value.strip():
        return None  # a missing label is named by the GX suite
    try:
        number = float(value)
    except ValueError:
        number = float("nan")
    if not number.is_integer():
        raise DataError(f"{labels_csv} line {line}: label {value!r} of {file} is not a class index (a whole number)")
    return int(number)


def _copy_folder(source: Path, folder: Path) -> list[dict]:
    """A user's folder: labels.csv (file,label) naming images relative to it."""
    table = read_table(source, LABELS_FILE, ["file", "label"])
    rows = []
    for line, (file, label) in enumerate(zip(table["file"], table["label"]), start=2):
        value = _label(label, source / LABELS_FILE, line, file)
        if (src := inside(source, file)) is None:
            rows.append({**outside_row(file), "label": value})
            continue
        if not src.is_file():
            raise DataError(f"{source / LABELS_FILE} names {file}, which is not in {source}")
        target = folder / src.name
        if target.exists():
            raise DataError(f"{source / LABELS_FILE} names two images called {target.name}")
        shutil.copyfile(src, target)
        rows.append({"file": target.name, "label": value})
    return rows


def _inspect(path: Path) -> dict:
    try:
        with open_image(path) as image:
            pixels = np.asarray(image)
    except (OSError, SyntaxError, ValueError):
        return {"readable": False, "sha256": file_hash(path)}
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    digest = hashlib.sha256(f"{pixels.shape}{pixels.dtype}".encode() + pixels.tobytes()).hexdigest()
    return {
        "readable": True,
        "height": pixels.shape[0],
        "width": pixels.shape[1],
        "channels": channels,
        "dtype": str(pixels.dtype),
        "pixel_min": int(pixels.min()),
        "pixel_max": int(pixels.max()),
        "pixel_range": int(pixels.max()) - int(pixels.min()),
        "sha256": digest,
    }


COLUMNS = [
    "set",
    "file",
    "label",
    "caption",
    "seed",
    "inside_folder",
    "readable",
    "height",
    "width",
    "channels",
    "dtype",
    "pixel_min",
    "pixel_max",
    "pixel_range",
    "sha256",
    "file_sha256",
]


def materialise_sets(
    sources: dict[str, str],
    forget_classes: list[int],
    image_size: int,
    out: Path,
    progress: bool = True,
    retain_excluded: list[int] | None = None,
    split_seed: int = 0,
) -> pd.DataFrame:
    """Class request: write `out/forget/` and `out/retain/` (digits split or labelled folders) and `out/manifest.csv`.
    The digits retain set also leaves out `retain_excluded` (classes erased by earlier requests); `split_seed` is the
    digits split the model was trained on (the sets come from its training part)."""
    writers = {
        name: _class_writer(name, sources[name], forget_classes, image_size, retain_excluded or [], split_seed)
        for name in SETS
    }
    return write_sets(writers, out, progress)


def _class_writer(
    name: str, source: str, forget_classes: list[int], size: int, retain_excluded: list[int], split_seed: int
) -> Callable[[Path], list[dict]]:
    if source == DIGITS:
        return lambda folder: _write_digits(
            _digits_subset(name, forget_classes, size, retain_excluded, split_seed), folder
        )
    return lambda folder: _copy_folder(Path(source), folder)


def write_sets(writers: dict[str, Callable[[Path], list[dict]]], out: Path, progress: bool = True) -> pd.DataFrame:
    """Run each set's writer into `out/<set>/`, inspect every file it wrote, and save the manifest."""
    rows = []
    for name in SETS:
        folder = Path(out) / name
        folder.mkdir(parents=True, exist_ok=True)
        for row in tqdm(writers[name](folder), desc=f"inspect {name} set", disable=not progress):
            if row.get("inside_folder") is False:  # never opened: readable stays empty, the hash stands for the name
                rows.append({"set": name, **row, "sha256": config_hash(["outside", row["file"]], 64)})
                continue
            path = folder / row["file"]
            rows.append({"set": name, **row, "inside_folder": True, **_inspect(path), "file_sha256": file_hash(path)})
    manifest = pd.DataFrame(rows, columns=COLUMNS).astype({"label": "Int64", "seed": "Int64"})
    manifest.to_csv(Path(out) / MANIFEST, index=False)
    return manifest


def set_hashes(manifest: pd.DataFrame) -> dict[str, str]:
    """One content hash per set: over its sorted (image hash, label, caption) triples, independent of file names and
    order."""
    hashes = {}
    for name in SETS:
        part = manifest[manifest["set"] == name]
        hashes[name] = config_hash(
            sorted(zip(part["sha256"], part["label"].astype(str), part["caption"].astype("string").fillna(""))), 64
        )
    return hashes


def balance_report(manifest: pd.DataFrame) -> pd.DataFrame:
    """Images per label (class requests) or per caption (concept requests) in each set: a balance table for
    reviewers."""
    key = "label" if manifest["label"].notna().any() else "caption"
    return manifest.groupby(["set", key], dropna=False).size().unstack("set", fill_value=0)


def read_manifest(root: Path, name: str) -> pd.DataFrame:
    manifest = pd.read_csv(
        Path(root) / MANIFEST,
        dtype={"file": str, "caption": str},
        keep_default_na=False,
        na_values={"label": [""], "seed": [""]},
    )
    return manifest[manifest["set"] == name]


def read_images(root: Path, name: str, files: list[str], channels: int, size: int = 1) -> torch.Tensor:
    """The set's files as (N, C, H, W) tensors in [-1, 1], exactly the images the manifest hashed."""
    mode = "L" if channels == 1 else "RGB"
    images = []
    for file in files:
        with open_image(Path(root) / name / file) as image:
            images.append(torch.from_numpy(np.asarray(image.convert(mode), dtype=np.float32).copy()))
    if not images:
        return torch.zeros(0, channels, size, size)
    stacked = torch.stack(images)
    stacked = stacked.unsqueeze(1) if stacked.ndim == 3 else stacked.permute(0, 3, 1, 2)
    return stacked / 127.5 - 1


def load_curated_set(root: Path, name: str, channels: int) -> LabeledImages:
    """A class request's curated set as [-1, 1] tensors with labels."""
    part = read_manifest(root, name)
    return LabeledImages(
        read_images(root, name, list(part["file"]), channels),
        torch.tensor(part["label"].to_numpy(dtype=np.int64), dtype=torch.long),
    )
