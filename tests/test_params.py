"""Trainable-parameter presets on a tiny text-conditioned UNet built in code (it has cross-attention)."""

import pytest
from diffusers import UNet2DConditionModel

from erasediff.method.params import select_parameters
from erasediff.util.errors import ErasediffError


@pytest.fixture(scope="module")
def cond_unet() -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(8, 16),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=8,
        attention_head_dim=2,
        norm_num_groups=4,
    )


def test_full_selects_everything(cond_unet) -> None:
    assert len(select_parameters(cond_unet, "full")) == len(list(cond_unet.parameters()))


def test_xattn_selects_only_cross_attention(cond_unet) -> None:
    names = select_parameters(cond_unet, "xattn")
    assert names and all(".attn2." in n for n in names)


def test_xattn_kv_selects_the_cross_attention_keys_and_values(cond_unet) -> None:
    names = set(select_parameters(cond_unet, "xattn_kv"))
    cross = set(select_parameters(cond_unet, "xattn"))
    assert names and names < cross  # a strict subset: queries and output projections stay frozen
    assert all(".attn2.to_k." in n or ".attn2.to_v." in n for n in names)
    assert {n for n in cross if ".to_k." in n or ".to_v." in n} == names


def test_noxattn_excludes_cross_attention_time_embedding_and_output(cond_unet) -> None:
    names = set(select_parameters(cond_unet, "noxattn"))
    everything = {n for n, _ in cond_unet.named_parameters()}
    excluded = everything - names
    assert excluded and all(
        ".attn2." in n or n.startswith(("time_embedding.", "conv_norm_out.", "conv_out.")) for n in excluded
    )
    assert all(
        any(n.startswith(p) for n in excluded) for p in ("time_embedding.", "conv_norm_out.", "conv_out.")
    )  # the reference's `out.`
    assert any(".attn1." in n for n in names)


def test_include_and_exclude_patterns(cond_unet) -> None:
    names = select_parameters(cond_unet, "xattn", include=["conv_out.*"], exclude=["*.to_v.*"])
    assert "conv_out.weight" in names
    assert not any(".to_v." in n for n in names)


def test_empty_selection_is_an_error(digits_model) -> None:
    with pytest.raises(ErasediffError, match="selects no parameter"):
        select_parameters(digits_model.unet, "xattn")  # the class-conditional UNet has no cross-attention


def test_the_frozen_original_answers_as_a_full_copy_and_holds_only_the_trainable_subset(cond_unet) -> None:
    """erasediff/method/frozen_original.py: after the working UNet trained, the original answers as a whole copy of
    the base would, while holding only the tensors training changes."""
    import copy

    import torch

    from erasediff.method.frozen_original import FrozenOriginal

    unet, full_copy = copy.deepcopy(cond_unet), copy.deepcopy(cond_unet)
    trained = list(select_parameters(unet, "xattn").values())
    original = FrozenOriginal(unet, trained)
    with torch.no_grad():
        for p in trained:
            p.add_(torch.randn_like(p))  # training moves the working weights
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 3, 8)
    assert not torch.allclose(unet(x, t, c).sample, full_copy(x, t, c).sample)
    assert torch.allclose(original(x, t, encoder_hidden_states=c).sample, full_copy(x, t, c).sample, atol=1e-6)
    held = sum(v.numel() for v in original.saved.values())
    assert held == sum(p.numel() for p in trained) < sum(p.numel() for p in unet.parameters()) / 2
