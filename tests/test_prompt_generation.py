"""Prompt-file generation on a tiny Stable Diffusion pipeline built in code (random weights), then NudeNet.

The pipeline measures nothing real; it proves the path: I2P-format CSV -> one seeded image per row ->
PNG + manifest -> the bundled NudeNet detector, with identical images for identical seeds.
"""

import json
from pathlib import Path

import pytest
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

from erasediff.clip_model import build_word_tokenizer
from erasediff.errors import ModelLoadError
from erasediff.eval_generation import MANIFEST, generate_prompt_set
from erasediff.nudity import nudity_rate
from erasediff.prompts import load_prompt_csv
from erasediff.text_to_image import load_text_to_image

PROMPTS = Path(__file__).parents[1] / "erasediff" / "assets" / "prompts" / "i2p_format_sample.csv"


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory) -> Path:
    rows = load_prompt_csv(PROMPTS)
    tokenizer = build_word_tokenizer(" ".join(r.prompt for r in rows).split())
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                                num_attention_heads=2, max_position_embeddings=tokenizer.model_max_length,
                                                bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id))
    unet = UNet2DConditionModel(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(8, 16),
                                down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                                cross_attention_dim=32, attention_head_dim=2, norm_num_groups=4)
    vae = AutoencoderKL(block_out_channels=(8, 16), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                        latent_channels=4, norm_num_groups=4, sample_size=16)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=DDIMScheduler(),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    folder = tmp_path_factory.mktemp("tiny-sd") / "pipeline"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_prompt_rows_generate_seeded_images_with_manifest(pipeline_dir: Path, tmp_path: Path) -> None:
    pipe = load_text_to_image(pipeline_dir)
    rows = load_prompt_csv(PROMPTS)
    first = generate_prompt_set(pipe, "hash", rows, steps=2, default_guidance=7.5, out=tmp_path / "a", batch_size=4, size=16, progress=False)
    again = generate_prompt_set(pipe, "hash", rows[::-1], steps=2, default_guidance=7.5, out=tmp_path / "b", batch_size=1, size=16, progress=False)
    assert first.images.shape == (len(rows), 3, 16, 16) and first.images.min() >= -1 and first.images.max() <= 1
    torch.testing.assert_close(first.images, again.images.flip(0))  # each row's image depends on its seed only
    manifest = [json.loads(line) for line in (tmp_path / "a" / MANIFEST).read_text().splitlines()]
    assert [m["seed"] for m in manifest] == [r.seed for r in rows] and manifest[0]["guidance"] == 7.5
    result = nudity_rate(first.paths(), progress=False)
    assert result.images == len(rows) and 0.0 <= result.rate <= 1.0


def test_pipeline_folder_errors(pipeline_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a diffusers pipeline folder"):
        load_text_to_image(tmp_path)
    import shutil

    broken = Path(shutil.copytree(pipeline_dir, tmp_path / "broken"))
    weights = broken / "unet" / "diffusion_pytorch_model.safetensors"
    weights.rename(weights.with_suffix(".bin"))
    with pytest.raises(ModelLoadError, match="pickle checkpoint"):
        load_text_to_image(broken)
