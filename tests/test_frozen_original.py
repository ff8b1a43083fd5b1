"""The frozen original as a copy of the trainable tensors only (erasediff/method/frozen_original.py): it answers as a
whole copy of the base would, after the working UNet trained, and holds only what training changes."""

import copy

import torch
from diffusers import UNet2DConditionModel

from erasediff.method.frozen_original import FrozenOriginal
from erasediff.method.params import select_parameters


def test_the_original_answers_as_a_full_copy_and_holds_only_the_trainable_subset() -> None:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8,
        block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=16,
        layers_per_block=1,
        norm_num_groups=8,
        attention_head_dim=4,
    )
    full_copy = copy.deepcopy(unet)
    trained = list(select_parameters(unet, "xattn", [], []).values())
    original = FrozenOriginal(unet, trained)
    with torch.no_grad():
        for p in trained:
            p.add_(torch.randn_like(p))  # training moves the working weights
    x, t, c = torch.randn(2, 4, 8, 8), torch.tensor([10, 500]), torch.randn(2, 3, 16)
    assert not torch.allclose(unet(x, t, c).sample, full_copy(x, t, c).sample)
    assert torch.allclose(original(x, t, encoder_hidden_states=c).sample, full_copy(x, t, c).sample, atol=1e-6)
    held = sum(v.numel() for v in original.saved.values())
    assert held == sum(p.numel() for p in trained) < sum(p.numel() for p in unet.parameters()) / 2
