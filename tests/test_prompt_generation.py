"""Prompt-file generation on a tiny Stable Diffusion pipeline built in code (random weights), then NudeNet.

The pipeline measures nothing real; it proves the path: I2P-format CSV -> one seeded image per row ->
PNG + manifest -> the bundled NudeNet detector, with identical images for identical seeds.
"""

import json
from pathlib import Path

import pytest
import torch
from conftest import PROMPTS

from erasediff.data.prompts import load_prompt_csv
from erasediff.evaluation.generation import MANIFEST, generate_prompt_set
from erasediff.evaluation.nudity import nudity_rate
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.util.errors import ModelLoadError


def test_prompt_rows_generate_seeded_images_with_manifest(tiny_sd_dir: Path, tmp_path: Path) -> None:
    pipe = load_text_to_image(tiny_sd_dir)
    rows = load_prompt_csv(PROMPTS)
    first = generate_prompt_set(
        pipe, "hash", rows, steps=2, default_guidance=7.5, out=tmp_path / "a", batch_size=4, size=16, progress=False
    )
    again = generate_prompt_set(
        pipe,
        "hash",
        rows[::-1],
        steps=2,
        default_guidance=7.5,
        out=tmp_path / "b",
        batch_size=1,
        size=16,
        progress=False,
    )
    assert first.images.shape == (len(rows), 3, 16, 16) and first.images.min() >= -1 and first.images.max() <= 1
    torch.testing.assert_close(first.images, again.images.flip(0))  # each row's image depends on its seed only
    manifest = [json.loads(line) for line in (tmp_path / "a" / MANIFEST).read_text().splitlines()]
    assert [m["seed"] for m in manifest] == [r.seed for r in rows] and manifest[0]["guidance"] == 7.5
    result = nudity_rate(first.paths(), progress=False)
    assert result.images == len(rows) and 0.0 <= result.rate <= 1.0


def test_pipeline_folder_errors(tiny_sd_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a diffusers pipeline folder"):
        load_text_to_image(tmp_path)
    import shutil

    broken = Path(shutil.copytree(tiny_sd_dir, tmp_path / "broken"))
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelLoadError, match="pickle checkpoint"):
        load_text_to_image(broken)
