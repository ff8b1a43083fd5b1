"""The project's anchored retain loss (method/robust/retain_anchor.py): what it adds to the retain loss, where it
applies, and that it
holds the retained classes nearer the original under the relearning term."""

import copy

import pytest
import torch
from pydantic import ValidationError

from erasediff.data.image_sets import LabeledImages
from erasediff.method.losses import diffusion_loss, draw_batch
from erasediff.method.robust.retain_anchor import anchored_retain_loss
from erasediff.method.unlearning_settings import PAPER_PLAIN, UnlearnSettings


class ScaleUNet(torch.nn.Module):
    """eps = scale * x_t + label: one weight, so the anchor's pull can be read off exactly."""

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(scale))

    def forward(self, x, t, class_labels):
        return type("Out", (), {"sample": self.scale * x + class_labels.float().view(-1, 1, 1, 1)})()


def batch_and_noised(scheduler):
    data = LabeledImages(torch.randn(16, 1, 4, 4), torch.arange(16) % 5)
    batch = draw_batch(data, 16, 0, 0, 1000, torch.Generator().manual_seed(0))
    return batch, scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)


def test_at_the_base_weights_it_is_the_plain_retain_loss(digits_model) -> None:
    unet, scheduler = ScaleUNet(1.0), digits_model.scheduler
    batch, _ = batch_and_noised(scheduler)
    anchored = anchored_retain_loss(unet, copy.deepcopy(unet), 3.0, scheduler, batch, lambda y: {"class_labels": y})
    assert torch.allclose(anchored, diffusion_loss(unet, scheduler, batch))


def test_away_from_them_it_adds_weight_times_the_drift_and_pulls_back(digits_model) -> None:
    scheduler = digits_model.scheduler
    original, unet = ScaleUNet(1.0).requires_grad_(False), ScaleUNet(1.5)
    batch, x_t = batch_and_noised(scheduler)
    cond = lambda y: {"class_labels": y}  # noqa: E731
    extra = anchored_retain_loss(unet, original, 3.0, scheduler, batch, cond) - diffusion_loss(unet, scheduler, batch)
    assert torch.allclose(extra, 3.0 * (0.5 * x_t).pow(2).mean())  # (1.5 - 1.0)^2 x_t^2, weighted
    (pull,) = torch.autograd.grad(extra, [unet.scale])
    assert (
        torch.allclose(pull, 3.0 * 2 * 0.5 * x_t.pow(2).mean()) and pull > 0
    )  # descent moves the scale back towards 1.0
    assert original.scale.item() == 1.0


def test_off_by_default_and_refused_without_a_retain_loss() -> None:
    assert UnlearnSettings().retain_anchor == 0.0 and PAPER_PLAIN["retain_anchor"] == 0.0
    for method in ("erasediff", "finetune", "neggrad", "salun"):
        assert UnlearnSettings.model_validate({"method": method, "retain_anchor": 3.0}).retain_anchor == 3.0
    with pytest.raises(ValidationError, match="esd has no retain loss"):
        UnlearnSettings.model_validate({"method": "esd", "retain_anchor": 3.0})


@pytest.mark.integration
def test_it_holds_the_retained_classes_nearer_the_original_under_the_relearning_term(digits_model) -> None:
    """The relearning term moves the retained classes' predictions; the anchor should take back a good part of that,
    measured as the distance to the original's predictions on held-out retained images at fixed noise."""
    from erasediff.data.digits import load_digits_split
    from erasediff.data.image_sets import split_forget_retain
    from erasediff.method.targets.classes import unlearn_classes

    train, heldout = load_digits_split()
    forget, retain = split_forget_retain(train, [3], digits_model.num_classes)
    others = heldout.labels != 3
    x0, labels = heldout.images[others][:128], heldout.labels[others][:128]
    g = torch.Generator().manual_seed(0)
    x_t = digits_model.scheduler.add_noise(
        x0, torch.randn(x0.shape, generator=g), t := torch.randint(0, 1000, (len(x0),), generator=g)
    )
    with torch.no_grad():
        before = digits_model.unet(x_t, t, class_labels=labels).sample

    def drift(anchor: float) -> float:
        settings = UnlearnSettings(steps=40, batch_size=32, forget_batch_size=32, relearn={}, retain_anchor=anchor)
        unet = unlearn_classes(digits_model, forget, retain, [3], settings, progress=False).unet
        with torch.no_grad():
            return float((unet(x_t, t, class_labels=labels).sample - before).pow(2).mean())

    plain, anchored = drift(0.0), drift(3.0)
    assert anchored < 0.5 * plain, (plain, anchored)  # 40 updates of 32 + 32: about 0.14x
