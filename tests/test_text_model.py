"""Text-to-image pipelines under EraseDiff: folder checks, frozen components, SDXL conditioning, memory settings.

The pipelines are random-weight tiny SD and SDXL folders built in code: they prove the code paths
(which parameters train, what is saved, what loads), not erasure quality (tests/test_concept_erasure.py).
"""

import json
import shutil
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from diffusers import DiffusionPipeline, StableDiffusionXLPipeline

from erasediff.data.image_sets import CaptionedImages
from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.text_pipeline import check_pipeline_folder, load_text_to_image, save_text_pipeline
from erasediff.util.errors import DataError, ErasediffError, ModelLoadError
from erasediff.util.hashing import folder_hash

FORGET, ANCHOR = "a photo of nude person", "a photo of person wearing clothes"
TINY = UnlearnSettings(steps=2, batch_size=2, forget_batch_size=2, lr=1e-3)


def tiny(**changes) -> UnlearnSettings:
    return UnlearnSettings.model_validate({**TINY.model_dump(by_alias=True), **changes})


def sets(n: int = 4, size: int = 16) -> tuple[CaptionedImages, CaptionedImages]:
    g = torch.Generator().manual_seed(0)
    images = torch.rand(2 * n, 3, size, size, generator=g) * 2 - 1
    return CaptionedImages(images[:n], [FORGET] * n), CaptionedImages(images[n:], [ANCHOR] * n)


def copy(folder: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(folder, tmp_path / "pipeline"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: shutil.rmtree(f / "vae"), "pipeline component vae is missing: stage its folder at"),
        (
            lambda f: (f / "text_encoder" / "model.safetensors").rename(f / "text_encoder" / "pytorch_model.bin"),
            "pytorch_model.bin is a pickle checkpoint, which is never unpickled",
        ),
        (lambda f: (f / "unet" / "diffusion_pytorch_model.safetensors").unlink(), "missing weight file"),
        (
            lambda f: (f / "model_index.json").write_text(
                json.dumps(
                    {k: v for k, v in json.loads((f / "model_index.json").read_text()).items() if k != "text_encoder"}
                )
            ),
            "names no text_encoder",
        ),
    ],
    ids=["missing-vae", "pickle-only-text-encoder", "missing-unet-weights", "index-without-text-encoder"],
)
def test_incomplete_or_pickle_pipeline_folders_fail_clearly(
    tiny_sd_dir: Path, tmp_path: Path, damage, message: str
) -> None:
    folder = copy(tiny_sd_dir, tmp_path)
    damage(folder)
    with pytest.raises(ModelLoadError, match=message) as info:
        load_text_to_image(folder)
    assert "\n" not in str(info.value)


def test_sd_unlearning_trains_only_the_unet_and_saves_a_loadable_pipeline(tiny_sd_dir: Path, tmp_path: Path) -> None:
    base_hash = folder_hash(tiny_sd_dir)
    pipe = load_text_to_image(tiny_sd_dir)
    frozen_before = {n: p.clone() for n, p in pipe.text_encoder.named_parameters()} | {
        f"vae.{n}": p.clone() for n, p in pipe.vae.named_parameters()
    }
    unet_before = {n: p.clone() for n, p in pipe.unet.named_parameters()}
    forget, retain = sets()
    rows = []
    unet = unlearn_concept(pipe, forget, retain, [ANCHOR], TINY, callback=rows.append, progress=False)
    assert [r.step for r in rows] == [1, 2] and all(r.lambda_t >= 0 for r in rows)
    assert any(not torch.equal(p, unet_before[n]) for n, p in unet.named_parameters())  # the copy learned
    assert all(torch.equal(p, unet_before[n]) for n, p in pipe.unet.named_parameters())  # the input did not
    frozen_after = {n: p for n, p in pipe.text_encoder.named_parameters()} | {
        f"vae.{n}": p for n, p in pipe.vae.named_parameters()
    }
    assert all(torch.equal(frozen_after[n], v) and frozen_after[n].grad is None for n, v in frozen_before.items())

    out = save_text_pipeline(tiny_sd_dir, unet, tmp_path / "unlearned", {"request_id": "T-1"})
    reloaded = DiffusionPipeline.from_pretrained(out, local_files_only=True)
    assert type(reloaded).__name__ == "StableDiffusionPipeline"
    for component in ("vae", "text_encoder", "tokenizer", "scheduler"):
        assert folder_hash(out / component) == folder_hash(
            tiny_sd_dir / component
        )  # unchanged components, byte for byte
    assert json.loads((out / "erasediff_model.json").read_text())["lineage"]["request_id"] == "T-1"
    assert folder_hash(tiny_sd_dir) == base_hash


def test_noxattn_preset_leaves_cross_attention_time_embedding_and_the_output_block(tiny_sd_dir: Path) -> None:
    pipe = load_text_to_image(tiny_sd_dir)
    forget, retain = sets()
    unet = unlearn_concept(pipe, forget, retain, [ANCHOR], tiny(params={"preset": "noxattn"}), progress=False)
    before = dict(pipe.unet.named_parameters())
    changed = {n for n, p in unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and not any(
        ".attn2." in n or n.startswith(("time_embedding.", "conv_norm_out.", "conv_out.")) for n in changed
    )


def test_sdxl_pipeline_unlearns_with_pooled_text_and_time_ids(tiny_sdxl_dir: Path, tmp_path: Path) -> None:
    pipe = load_text_to_image(tiny_sdxl_dir)
    assert isinstance(pipe, StableDiffusionXLPipeline)
    forget, retain = sets()
    unet = unlearn_concept(pipe, forget, retain, [ANCHOR], TINY, progress=False)
    out = save_text_pipeline(tiny_sdxl_dir, unet, tmp_path / "unlearned", {})
    reloaded = load_text_to_image(out)
    assert isinstance(reloaded, StableDiffusionXLPipeline)
    assert folder_hash(out / "text_encoder_2") == folder_hash(tiny_sdxl_dir / "text_encoder_2")
    images = reloaded(
        prompt=["a photo of person"],
        num_inference_steps=2,
        output_type="pt",
        generator=torch.Generator().manual_seed(0),
    ).images
    assert images.shape == (1, 3, 16, 16) and torch.isfinite(images).all()


def test_gradient_checkpointing_gives_the_same_update(tiny_sd_dir: Path) -> None:
    pipe = load_text_to_image(tiny_sd_dir)
    forget, retain = sets()
    plain = unlearn_concept(pipe, forget, retain, [ANCHOR], TINY, progress=False)
    checkpointed = unlearn_concept(pipe, forget, retain, [ANCHOR], tiny(gradient_checkpointing=True), progress=False)
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6, msg=name)
    assert not checkpointed.is_gradient_checkpointing  # the saved UNet is a plain one


def test_bf16_updates_cast_the_weights_afresh_at_every_forward(tiny_sd_dir: Path) -> None:
    """The loop runs bf16 without autocast's weight cache, so the relearning term's attacked weights are the ones its
    forward passes read (tests/test_robust.py shows the cache hides them)."""
    pipe = load_text_to_image(tiny_sd_dir)
    seen: list[tuple[bool, bool]] = []
    pipe.unet.register_forward_pre_hook(
        lambda *_: seen.append((torch.is_autocast_enabled("cpu"), torch.is_autocast_cache_enabled()))
    )  # deep-copied with the UNet into the loop's working copy
    forget, retain = sets()
    AcceleratorState._reset_state()  # accelerate refuses a second precision in one process; this test runs bf16
    try:
        settings = tiny(mixed_precision="bf16", relearn={"steps": 1, "batch": 1})
        unlearn_concept(pipe, forget, retain, [ANCHOR], settings, progress=False)
    finally:
        AcceleratorState._reset_state()
    assert seen and all(seen_enabled and not cached for seen_enabled, cached in seen), seen


def test_bad_concept_inputs_fail_clearly(tiny_sd_dir: Path) -> None:
    pipe = load_text_to_image(tiny_sd_dir)
    forget, retain = sets()
    with pytest.raises(DataError, match="is also a forget-set caption"):
        unlearn_concept(pipe, forget, retain, [FORGET], TINY, progress=False)
    with pytest.raises(DataError, match="anchors is empty"):
        unlearn_concept(pipe, forget, retain, [], TINY, progress=False)
    with pytest.raises(DataError, match="forget set is empty"):
        unlearn_concept(pipe, CaptionedImages(forget.images[:0], []), retain, [ANCHOR], TINY, progress=False)
    with pytest.raises(ErasediffError, match="adam8bit runs on CUDA nodes only with bitsandbytes 0.48"):
        unlearn_concept(pipe, forget, retain, [ANCHOR], tiny(optimizer="adam8bit"), progress=False)


def test_check_pipeline_folder_accepts_a_complete_folder(tiny_sd_dir: Path) -> None:
    assert check_pipeline_folder(tiny_sd_dir) == tiny_sd_dir


def test_packaged_text_digits_model_is_found_by_its_config_and_met_its_bar(capsys) -> None:
    from erasediff.cli import main
    from erasediff.defaults.text_digits import RECORD, TextDigitsConfig, find_text_digits
    from erasediff.util.cache import PACKAGED_ROOT

    folder = find_text_digits(TextDigitsConfig(), [PACKAGED_ROOT])
    assert folder is not None  # the shipped folder is the one this code's default config trains
    record = json.loads((folder / RECORD).read_text())
    assert (
        min(record["prompt_accuracy"].values()) >= 0.7
    )  # training time is recorded, not asserted (benchmarks hold timings)
    assert main(["train-text-digits"]) == 0 and str(folder) in capsys.readouterr().out  # reused, not retrained
