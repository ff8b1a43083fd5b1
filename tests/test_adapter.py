"""Adapter (LoRA) erasure: only the adapter trains, the version stores the base UNet unchanged plus the adapter,
and loading fuses it into exactly the weights that were trained. Random-weight tiny SD and SDXL folders built in
code."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.text_pipeline import LORA_FILE, load_text_to_image, save_text_pipeline
from erasediff.request.schema import load_request
from erasediff.util.errors import ErasediffError
from erasediff.util.hashing import file_hash
from tests.test_text_model import sets, tiny

UNET_FILE = Path("unet") / "diffusion_pytorch_model.safetensors"


def _outputs(unet: torch.nn.Module, pipe) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    c = unet.config
    x = torch.randn(2, c.in_channels, c.sample_size, c.sample_size, generator=g)
    context = torch.randn(2, 4, c.cross_attention_dim, generator=g)
    extra = {}
    if c.addition_embed_type == "text_time":  # SDXL's pooled text and size conditioning
        pooled = pipe.text_encoder_2.config.projection_dim
        extra = {
            "added_cond_kwargs": {
                "text_embeds": torch.randn(2, pooled, generator=g),
                "time_ids": torch.randn(2, 6, generator=g),
            }
        }
    with torch.no_grad():
        return unet(x, torch.tensor([10, 400]), context, **extra).sample


@pytest.mark.parametrize("fixture", ["tiny_sd_dir", "tiny_sdxl_dir"])
def test_adapter_erasure_stores_the_base_unet_and_the_adapter_and_loads_fused(
    fixture: str, request, tmp_path: Path
) -> None:
    base = request.getfixturevalue(fixture)
    pipe = load_text_to_image(base)
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    forget, retain = sets(size=pipe.unet.config.sample_size * 2 ** (len(pipe.vae.config.block_out_channels) - 1))
    unet = unlearn_concept(
        pipe, forget, retain, ["a photo of person wearing clothes"], tiny(lr=1e-2, adapter={"rank": 2}), progress=False
    )

    assert all(torch.equal(v, pipe.unet.state_dict()[k]) for k, v in before.items()), "the base pipeline's UNet changed"
    lora = {n: p for n, p in unet.named_parameters() if ".lora_" in n}
    assert lora and any(p.abs().sum() > 0 for n, p in lora.items() if "lora_B" in n), "the adapter did not train"
    trained = _outputs(unet, pipe)
    assert not torch.allclose(trained, _outputs(pipe.unet, pipe), atol=1e-4)

    out = save_text_pipeline(base, unet, tmp_path / "unlearned", {"base": str(base)})
    assert file_hash(out / UNET_FILE) == file_hash(base / UNET_FILE), (
        "an adapter version must keep the base UNet byte for byte"
    )
    stored = load_file(out / LORA_FILE)
    assert sum(t.numel() for t in stored.values()) == sum(p.numel() for p in lora.values())
    assert (out / LORA_FILE).stat().st_size < 0.5 * (base / UNET_FILE).stat().st_size

    loaded = load_text_to_image(out)
    assert not any(".lora_" in n for n, _ in loaded.unet.named_parameters()), (
        "loading must fuse the adapter, not keep its layers"
    )
    torch.testing.assert_close(_outputs(loaded.unet, loaded), trained, atol=1e-5, rtol=1e-4)


def test_a_second_erasure_on_an_adapter_version_saves_full_weights(tiny_sd_dir: Path, tmp_path: Path) -> None:
    """The next request starts from the fused first adapter; its own adapter would be relative to that, so it is fused
    too."""
    pipe = load_text_to_image(tiny_sd_dir)
    forget, retain = sets(size=32)
    settings = tiny(lr=1e-2, adapter={"rank": 2})
    first = save_text_pipeline(
        tiny_sd_dir,
        unlearn_concept(pipe, forget, retain, ["a photo of person wearing clothes"], settings, progress=False),
        tmp_path / "first",
        {},
    )
    second_pipe = load_text_to_image(first)
    unet = unlearn_concept(second_pipe, forget, retain, ["a photo of person wearing clothes"], settings, progress=False)
    expected = _outputs(unet, second_pipe)
    second = save_text_pipeline(first, unet, tmp_path / "second", {})
    assert not (second / LORA_FILE).exists()
    torch.testing.assert_close(_outputs(load_text_to_image(second).unet, second_pipe), expected, atol=1e-5, rtol=1e-4)


def test_adapter_is_refused_where_it_cannot_apply(tiny_sd_dir: Path, digits_model) -> None:
    with pytest.raises(ValueError, match="SalUn masks individual weights"):
        UnlearnSettings(method="salun", adapter={"rank": 4})
    from erasediff.method.params import select_parameters
    from erasediff.models.lora import add_adapter

    with pytest.raises(ErasediffError, match="UNet2DModel trains full weights"):
        add_adapter(digits_model.unet, select_parameters(digits_model.unet), tiny(adapter={"rank": 2}).adapter)


def test_a_class_request_with_an_adapter_is_refused_at_load(tmp_path: Path) -> None:
    text = (Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml").read_text()
    (tmp_path / "r.yaml").write_text(text.replace("unlearning:", "unlearning:\n  advanced: {adapter: {rank: 4}}\n ", 1))
    with pytest.raises(Exception, match="unlearning.advanced.adapter \\(LoRA\\) is for text-to-image pipelines"):
        load_request(tmp_path / "r.yaml")


def test_an_adapter_version_adds_only_the_adapter_to_the_part_store(tiny_sd_dir: Path, tmp_path: Path) -> None:
    from erasediff.method.params import select_parameters
    from erasediff.models.lora import AdapterSettings, add_adapter
    from erasediff.storage.parts import FolderBlobs, pack

    unet = load_text_to_image(tiny_sd_dir).unet
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # as training would: every adapter tensor its own values (equal tensors would share a part)
        for p in add_adapter(unet, select_parameters(unet, "noxattn"), AdapterSettings(rank=2)).values():
            p.add_(1e-2 * torch.randn(p.shape, generator=g))
    out = save_text_pipeline(tiny_sd_dir, unet, tmp_path / "adapter-version", {})
    blobs = FolderBlobs(tmp_path / "blobs")
    pack(tiny_sd_dir, blobs)  # the base, stored by the first version
    manifest, added = pack(out, blobs)
    lineage_bytes = 4096  # the lineage record and the pipeline index are small files of their own
    assert (out / LORA_FILE).stat().st_size <= added <= (out / LORA_FILE).stat().st_size + lineage_bytes
    assert (
        added < (out / UNET_FILE).stat().st_size
    )  # the UNet is not stored again (README gives the shares for real models)
