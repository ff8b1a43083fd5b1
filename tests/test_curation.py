"""Curation: manifests with content hashes, and Great Expectations suites that name what is wrong."""

import shutil
from pathlib import Path

import pytest
import torch

from erasediff.curation.expectations import request_expectations, validate_sets
from erasediff.curation.sets import MANIFEST, load_curated_set, materialise_sets, set_hashes
from erasediff.data.digits import load_digits_split
from erasediff.util.errors import DataError


def expectations(min_forget: int = 10):
    return request_expectations([3], 10, 16, 1, min_forget, 100, 0.05)


@pytest.fixture(scope="module")
def digits_sets(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("curated") / "sets"
    materialise_sets({"forget": "digits", "retain": "digits"}, [3], 16, out, progress=False)
    return out


def test_digits_sets_pass_and_round_trip(digits_sets: Path) -> None:
    import pandas as pd

    manifest = pd.read_csv(digits_sets / MANIFEST)
    report = validate_sets(manifest, expectations())
    assert report.success, report.failures
    train, _ = load_digits_split()
    forget = load_curated_set(digits_sets, "forget", 1)
    expected = train.images[train.labels == 3]
    assert forget.labels.eq(3).all() and len(forget) == len(expected)
    assert (forget.images - expected).abs().max() <= 1 / 127.5 + 1e-6  # PNG quantisation only


def test_set_hash_ignores_file_names_and_order(digits_sets: Path) -> None:
    import pandas as pd

    manifest = pd.read_csv(digits_sets / MANIFEST)
    shuffled = manifest.sample(frac=1, random_state=0).assign(file=lambda m: "x" + m["file"])
    assert set_hashes(shuffled) == set_hashes(manifest)
    changed = manifest.copy()
    changed.loc[0, "label"] = 5
    assert set_hashes(changed)["forget"] != set_hashes(manifest)["forget"]


def test_overlap_duplicates_and_bad_labels_are_listed(digits_sets: Path) -> None:
    import pandas as pd

    manifest = pd.read_csv(digits_sets / MANIFEST)
    retain = manifest[manifest["set"] == "retain"].index
    bad = manifest.copy()
    bad.loc[retain[0], "sha256"] = bad.loc[0, "sha256"]  # an image in both sets
    bad.loc[retain[1:120], "sha256"] = bad.loc[retain[200], "sha256"]  # a duplicate flood
    bad.loc[1, "label"] = 4  # a retained class in the forget set
    failures = "\n".join(validate_sets(bad, expectations()).failures)
    assert "forget_retain_disjoint: expect_column_values_to_be_unique" in failures
    assert "retain_set: expect_column_proportion_of_unique_values_to_be_between" in failures
    assert "forget_set: expect_column_values_to_be_in_set(column=label" in failures


def test_user_folder_needs_labels_csv(tmp_path: Path) -> None:
    (tmp_path / "forget").mkdir()
    with pytest.raises(DataError, match="labels.csv"):
        materialise_sets(
            {"forget": str(tmp_path / "forget"), "retain": "digits"}, [3], 16, tmp_path / "out", progress=False
        )


def test_corrupt_image_in_user_folder_is_kept_unreadable(digits_sets: Path, tmp_path: Path) -> None:
    folder = tmp_path / "forget"
    folder.mkdir()
    for i in range(12):
        shutil.copyfile(digits_sets / "forget" / f"{i:05d}.png", folder / f"{i}.png")
    (folder / "3.png").write_bytes(b"\x89PNG not really")
    (folder / "labels.csv").write_text("file,label\n" + "".join(f"{i}.png,3\n" for i in range(12)))
    manifest = materialise_sets({"forget": str(folder), "retain": "digits"}, [3], 16, tmp_path / "out", progress=False)
    assert manifest.loc[manifest["file"] == "3.png", "readable"].tolist() == [False]
    report = validate_sets(manifest, expectations())
    assert not report.success and any("column=readable" in f for f in report.failures)
    assert torch.is_tensor(load_curated_set(tmp_path / "out", "retain", 1).images)


def test_entries_that_leave_the_folder_are_never_read(digits_sets: Path, tmp_path: Path) -> None:
    """A symlink to /etc/passwd, `../` to a sibling folder and absolute paths: nothing outside is copied, hashed or
    trained on; the GX suite names each row; the files inside still pass."""
    from erasediff.curation.concept_sets import captioned_folder_writer

    data, sibling = tmp_path / "data", tmp_path / "other"
    shutil.copytree(digits_sets / "forget", data)
    sibling.mkdir()
    shutil.copyfile(data / "00000.png", sibling / "x.png")
    (data / "link.png").symlink_to("/etc/passwd")
    (data / "linked-dir").symlink_to(sibling, target_is_directory=True)
    outside = ["link.png", "../other/x.png", "/etc/hostname", str(sibling / "x.png"), "linked-dir/x.png"]
    inside = sorted(p.name for p in data.glob("*.png") if not p.is_symlink())[:15]
    (data / "labels.csv").write_text("file,label\n" + "".join(f"{f},3\n" for f in inside + outside))
    out = tmp_path / "sets"
    manifest = materialise_sets({"forget": str(data), "retain": "digits"}, [3], 16, out, progress=False)
    report = validate_sets(manifest, expectations())
    assert not report.success
    (failure,) = [f for f in report.failures if "inside_folder" in f]
    assert "5 unexpected" in failure and "forget/link.png" in failure
    forget = manifest[manifest["set"] == "forget"]
    assert sorted(forget[forget["inside_folder"] == False]["file"]) == sorted(outside)  # noqa: E712 - a pandas mask
    assert forget[forget["inside_folder"] == False]["file_sha256"].isna().all()  # noqa: E712 - never opened
    assert sorted(p.name for p in (out / "forget").iterdir()) == inside  # nothing from outside was copied
    assert report.failures == [failure]  # the rows inside pass every other expectation

    (data / "captions.csv").write_text("file,caption\n" + "".join(f"{f},a photo\n" for f in ["00000.png", *outside]))
    (tmp_path / "captioned").mkdir()
    rows = captioned_folder_writer(data, 16)(tmp_path / "captioned")  # the concept sets' folders: the same rule
    assert [r["file"] for r in rows if r.get("inside_folder") is False] == outside
    assert len(list((tmp_path / "captioned").iterdir())) == 1
