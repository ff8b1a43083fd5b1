"""Forget/retain losses and batches: substitutes, no condition dropout, real shuffling."""

import pytest
import torch

from erasediff.data.image_sets import LabeledImages
from erasediff.method.losses import diffusion_loss, draw_batch, epoch_indices, remap_forget_loss


def test_epochs_are_reshuffled_permutations() -> None:
    n, bs = 10, 5
    first = torch.cat([epoch_indices(n, bs, s, seed=0) for s in range(2)])
    second = torch.cat([epoch_indices(n, bs, s, seed=0) for s in range(2, 4)])
    assert sorted(first.tolist()) == list(range(n)) == sorted(second.tolist())
    assert not torch.equal(first, second)  # not the same first batch every step (reference bug)
    assert torch.equal(epoch_indices(n, bs, 3, seed=0), epoch_indices(n, bs, 3, seed=0))


def test_substitute_never_a_forgotten_class() -> None:
    data = LabeledImages(torch.zeros(20, 1, 4, 4), torch.full((20,), 3))
    allowed = torch.tensor([0, 1, 2, 4, 5])
    batch = draw_batch(data, 512, 0, 0, 1000, torch.Generator().manual_seed(0), substitute_classes=allowed)
    assert set(batch.substitute.tolist()) == set(allowed.tolist())
    assert torch.equal(batch.labels, torch.full((512,), 3))  # true labels: no condition dropout


def test_uniform_noise_in_unit_interval() -> None:
    data = LabeledImages(torch.zeros(8, 1, 4, 4), torch.zeros(8, dtype=torch.long))
    batch = draw_batch(data, 64, 0, 0, 1000, torch.Generator().manual_seed(0), uniform_noise=True)
    assert batch.noise.min() >= 0 and batch.noise.max() < 1


class RecordingUNet(torch.nn.Module):
    """Minimal eps-predictor that records the class labels it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.calls: list[torch.Tensor] = []

    def forward(self, x, t, class_labels):
        self.calls.append(class_labels.clone())
        out = self.scale * x + class_labels.float().view(-1, 1, 1, 1)
        return type("Out", (), {"sample": out})()


def test_remap_targets_substitute_prediction_with_stop_gradient(digits_model) -> None:
    unet, scheduler = RecordingUNet(), digits_model.scheduler
    data = LabeledImages(torch.randn(4, 1, 4, 4), torch.full((4,), 3))
    batch = draw_batch(data, 4, 0, 0, 1000, torch.Generator().manual_seed(0), substitute_classes=torch.tensor([7]))
    loss = remap_forget_loss(unet, scheduler, batch)
    # predictions differ only by the label offset: (3 - 7)^2 = 16, and the target carries no gradient
    assert loss.item() == 16.0
    assert [c.tolist() for c in unet.calls] == [[7] * 4, [3] * 4]
    # loss = mean((s*x_t + 3 - sg[s*x_t + 7])^2). With the target detached, d/ds = -8 mean(x_t);
    # had the gradient flowed through the target too, the two x_t terms would cancel to 0.
    (grad,) = torch.autograd.grad(loss, [unet.scale])
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    expected = -8.0 * x_t.mean()
    assert abs(float(expected)) > 1e-3
    torch.testing.assert_close(grad, expected)


def test_retain_loss_is_zero_for_a_perfect_predictor(digits_model) -> None:
    class Oracle(torch.nn.Module):
        def forward(self, x, t, class_labels):
            return type("Out", (), {"sample": self.noise})()

    data = LabeledImages(torch.randn(4, 1, 4, 4), torch.zeros(4, dtype=torch.long))
    batch = draw_batch(data, 4, 0, 0, 1000, torch.Generator().manual_seed(0))
    oracle = Oracle()
    oracle.noise = batch.noise
    assert float(diffusion_loss(oracle, digits_model.scheduler, batch)) == 0.0


def test_each_prediction_type_regresses_its_own_target(digits_model) -> None:
    """epsilon -> the noise, v_prediction -> v, sample -> x0 (a `sample` model was trained on the noise before)."""
    from diffusers import DDPMScheduler

    from erasediff.util.errors import ErasediffError

    data = LabeledImages(torch.randn(4, 1, 4, 4), torch.zeros(4, dtype=torch.long))
    batch = draw_batch(data, 4, 0, 0, 1000, torch.Generator().manual_seed(0))

    class Echo(torch.nn.Module):  # predicts exactly `target`: the loss is zero only for the right target
        def forward(self, x, t, class_labels):
            return type("Out", (), {"sample": self.target})()

    echo = Echo()
    for kind, target in (("epsilon", batch.noise), ("sample", batch.x0)):
        scheduler = DDPMScheduler.from_config({**digits_model.scheduler.config, "prediction_type": kind})
        echo.target = target
        assert float(diffusion_loss(echo, scheduler, batch)) == 0.0
        echo.target = batch.noise if kind == "sample" else batch.x0
        assert float(diffusion_loss(echo, scheduler, batch)) > 0.0
    v = DDPMScheduler.from_config({**digits_model.scheduler.config, "prediction_type": "v_prediction"})
    echo.target = v.get_velocity(batch.x0, batch.noise, batch.timesteps)
    assert float(diffusion_loss(echo, v, batch)) == 0.0
    odd = DDPMScheduler.from_config(digits_model.scheduler.config)
    odd.register_to_config(prediction_type="flow")
    with pytest.raises(ErasediffError, match="predicts 'flow'"):
        diffusion_loss(echo, odd, batch)
