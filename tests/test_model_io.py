"""Local diffusers folders: round trip, pickle refusal, clear messages for what is missing."""

import shutil
from pathlib import Path

import pytest
import torch
from diffusers import UNet2DModel

from erasediff.models.class_model import UNET_WEIGHTS, load_class_model, save_class_model
from erasediff.util.errors import ModelLoadError
from erasediff.util.hashing import folder_hash


def test_round_trip_keeps_weights_and_layout(digits_model, tmp_path: Path) -> None:
    out = save_class_model(digits_model, tmp_path / "copy")
    assert sorted(p.name for p in out.iterdir()) == ["erasediff_model.json", "model_index.json", "scheduler", "unet"]
    assert (out / "unet" / UNET_WEIGHTS).is_file()
    loaded = load_class_model(out)
    assert loaded.class_names == digits_model.class_names and loaded.null_class == 10
    for (name, a), (_, b) in zip(digits_model.unet.state_dict().items(), loaded.unet.state_dict().items()):
        assert torch.equal(a, b), name


def test_save_never_overwrites(digits_model, model_copy: Path) -> None:
    before = folder_hash(model_copy)
    with pytest.raises(Exception, match="refusing to overwrite"):
        save_class_model(digits_model, model_copy)
    assert folder_hash(model_copy) == before


def test_pickle_checkpoint_is_refused(model_copy: Path) -> None:
    weights = model_copy / "unet" / UNET_WEIGHTS
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    with pytest.raises(ModelLoadError, match=r"pickle checkpoint.*convert it to safetensors"):
        load_class_model(model_copy)


def test_missing_weights_say_what_to_stage(model_copy: Path) -> None:
    (model_copy / "unet" / UNET_WEIGHTS).unlink()
    with pytest.raises(ModelLoadError, match=r"missing weight file .*unet/diffusion_pytorch_model\.safetensors: stage"):
        load_class_model(model_copy)


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="model folder not found"):
        load_class_model(tmp_path / "nope")


def test_unconditional_unet_is_refused(model_copy: Path) -> None:
    shutil.rmtree(model_copy / "unet")
    UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8,),
        norm_num_groups=4,
        down_block_types=("DownBlock2D",),
        up_block_types=("UpBlock2D",),
    ).save_pretrained(model_copy / "unet")
    with pytest.raises(ModelLoadError, match="not class-conditional"):
        load_class_model(model_copy)
