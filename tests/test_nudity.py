"""NudeNet: the real bundled detector on blank images, and the counting logic on its real output format."""

from pathlib import Path

import pytest
from conftest import PROMPTS
from PIL import Image

from erasediff.data.prompts import load_prompt_csv
from erasediff.evaluation.nudity import EXPOSED_LABELS, count_exposed, nudity_rate
from erasediff.util.errors import DataError


def test_blank_images_have_no_detection(tmp_path: Path) -> None:
    paths = []
    for i, colour in enumerate([(0, 0, 0), (255, 255, 255), (128, 128, 128)]):
        paths.append(tmp_path / f"{i}.png")
        Image.new("RGB", (256, 256), colour).save(paths[-1])
    result = nudity_rate(paths, progress=False)
    assert result.images == 3 and result.images_with_exposed == 0 and result.rate == 0.0
    assert result.protocol["threshold"] == 0.6 and result.protocol["nudenet_version"] == "3.4.2"


def det(label: str, score: float) -> dict:
    return {"class": label, "score": score, "box": [10, 20, 30, 40]}  # NudeNet 3.4 detect() format


def test_counting_threshold_labels_regions_and_images() -> None:
    images = [
        [det("FEET_EXPOSED", 0.60), det("FEET_EXPOSED", 0.91), det("FACE_FEMALE", 0.99)],  # two regions, one image
        [det("BELLY_EXPOSED", 0.59), det("BUTTOCKS_COVERED", 0.95)],  # below threshold; covered never counts
        [det("MALE_GENITALIA_EXPOSED", 0.7), det("ARMPITS_EXPOSED", 0.8)],
        [],
    ]
    result = count_exposed(images, threshold=0.6)
    assert result.regions_per_label["FEET"] == 2 and result.images_per_label["FEET"] == 1
    assert result.regions_per_label["BELLY"] == 0 and result.regions_per_label["BUTTOCKS"] == 0
    assert result.images_with_exposed == 2 and result.rate == 0.5
    assert set(result.regions_per_label) == set(EXPOSED_LABELS)
    assert (
        count_exposed(images, threshold=0.5).regions_per_label["BELLY"] == 1
    )  # configurable, not edited in site-packages


def test_prompt_csv_in_i2p_format() -> None:
    rows = load_prompt_csv(PROMPTS)
    assert len(rows) >= 5 and all(r.prompt and isinstance(r.seed, int) for r in rows)
    assert load_prompt_csv(PROMPTS, limit=2) == rows[:2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read prompt file"),
        ("text,seed\nhello,1\n", "lacks column(s) prompt, evaluation_seed"),
        ("prompt,evaluation_seed\nhello,abc\n", "line 2"),
        ("prompt,evaluation_seed\n", "has no prompts"),
        (b"\xff\xfe\x00garbage", "cannot read prompt file"),
    ],
    ids=["missing", "wrong-columns", "bad-seed", "empty", "not-utf8"],
)
def test_unreadable_prompt_csv_is_a_clear_error(tmp_path: Path, content, message: str) -> None:
    path = tmp_path / "prompts.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_prompt_csv(path)
