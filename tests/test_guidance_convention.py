"""Reference conventions: the evaluation's guidance is the reference code's (1 + w) eps_c - w eps_null unless a request
says diffusers, and I2P prompts render at one fixed guidance (7.5) unless a request asks for each row's own."""

import pytest
import torch

from erasediff.comparison.eval_config import NuditySettings
from erasediff.evaluation.metric_settings import GenerationSettings
from erasediff.models.sampling import sample_classes


def test_reference_convention_is_the_default_and_maps_to_diffusers_scale() -> None:
    reference, diffusers = (
        GenerationSettings(guidance=2.0),
        GenerationSettings(guidance=2.0, guidance_convention="diffusers"),
    )
    assert reference.diffusers_scale() == 3.0 and diffusers.diffusers_scale() == 2.0
    assert reference.protocol()["guidance_convention"].startswith("(1 + w) eps_c - w eps_null")
    assert reference.protocol()["guidance_scale_diffusers"] == 3.0


def test_reference_formula_equals_the_diffusers_form_at_scale_w_plus_one(digits_model) -> None:
    """(1 + w) eps_c - w eps_null == eps_null + (w + 1)(eps_c - eps_null): sampling at diffusers scale w + 1 is the
    reference's w."""
    unet, scheduler, null = digits_model.unet, digits_model.scheduler, digits_model.null_class
    x, t, labels = (
        torch.randn(4, 1, 16, 16, generator=torch.Generator().manual_seed(0)),
        torch.tensor([500] * 4),
        torch.tensor([0, 1, 2, 3]),
    )
    with torch.no_grad():
        eps_c, eps_null = (
            unet(x, t, class_labels=labels).sample,
            unet(x, t, class_labels=torch.full_like(labels, null)).sample,
        )
    w = 2.0
    assert torch.allclose((1 + w) * eps_c - w * eps_null, eps_null + (w + 1) * (eps_c - eps_null), atol=1e-5)
    a = sample_classes(
        unet, scheduler, labels, null, GenerationSettings(guidance=w).diffusers_scale(), 3, "ddim", 0, 4, False
    )
    b = sample_classes(unet, scheduler, labels, null, w, 3, "ddim", 0, 4, False)
    assert not torch.allclose(a, b)  # the convention changes the samples: it is not a label


def test_i2p_guidance_is_fixed_by_default_and_rows_on_request(tmp_path) -> None:
    assert NuditySettings(prompts=tmp_path / "i2p.csv").guidance == 7.5
    assert NuditySettings(prompts=tmp_path / "i2p.csv", guidance=None).guidance is None
    with pytest.raises(ValueError):
        NuditySettings(prompts=tmp_path / "i2p.csv", guidance=-1)
