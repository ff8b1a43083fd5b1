"""The two objectives of EraseDiff, and the batches they consume.

A batch's `labels` are condition ids: class labels for a class-conditional UNet, or row numbers of a
prompt table for a text-conditioned one; `Condition` turns them into the UNet's keyword arguments.
Condition dropout is never applied here: both losses see the true conditions, so the null
("unconditional") embedding that classifier-free guidance relies on is not retrained.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler

from erasediff.data.image_sets import LabeledImages
from erasediff.util.errors import ErasediffError

ForgetLoss = Literal["remap", "uniform"]


Condition = Callable[[torch.Tensor], dict]  # condition ids -> UNet keyword arguments


def class_condition(labels: torch.Tensor) -> dict:
    return {"class_labels": labels}


@dataclass
class NoisedBatch:
    """Everything random about one loss evaluation, drawn up front so it can be replayed exactly."""

    x0: torch.Tensor
    labels: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    substitute: torch.Tensor | None = None

    def to(self, device: torch.device) -> "NoisedBatch":
        move = lambda t: None if t is None else t.to(device)  # noqa: E731
        return NoisedBatch(
            move(self.x0), move(self.labels), move(self.noise), move(self.timesteps), move(self.substitute)
        )


def epoch_indices(n: int, batch_size: int, step: int, seed: int) -> torch.Tensor:
    """Indices of batch `step` when walking reshuffled epochs of `n` items (a pure function of step and seed)."""
    offsets = torch.arange(step * batch_size, (step + 1) * batch_size)
    epochs, positions = offsets // n, offsets % n
    out = torch.empty(batch_size, dtype=torch.long)
    for epoch in epochs.unique().tolist():
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        mask = epochs == epoch
        out[mask] = perm[positions[mask]]
    return out


def draw_batch(
    data: LabeledImages,
    batch_size: int,
    step: int,
    seed: int,
    num_train_timesteps: int,
    generator: torch.Generator,
    uniform_noise: bool = False,
    substitute_classes: torch.Tensor | None = None,
) -> NoisedBatch:
    """A shuffled batch (new images every step) with its noise, timesteps and optional substitute labels."""
    idx = epoch_indices(len(data), batch_size, step, seed)
    x0, labels = data.images[idx], data.labels[idx]
    noise = torch.rand(x0.shape, generator=generator) if uniform_noise else torch.randn(x0.shape, generator=generator)
    timesteps = torch.randint(0, num_train_timesteps, (batch_size,), generator=generator)
    substitute = None
    if substitute_classes is not None:
        substitute = substitute_classes[torch.randint(len(substitute_classes), (batch_size,), generator=generator)]
    return NoisedBatch(x0, labels, noise, timesteps, substitute)


def regression_target(scheduler: DDPMScheduler, batch: NoisedBatch) -> torch.Tensor:
    """What the UNet regresses, by the scheduler's prediction type: the noise, v (SD 2.x 768), or the clean sample."""
    kind = scheduler.config.prediction_type
    if kind == "epsilon":
        return batch.noise
    if kind == "v_prediction":
        return scheduler.get_velocity(batch.x0, batch.noise, batch.timesteps)
    if kind == "sample":
        return batch.x0
    raise ErasediffError(
        f"the model's scheduler predicts {kind!r}; unlearning supports epsilon, v_prediction and sample"
    )


def diffusion_loss(
    unet: torch.nn.Module, scheduler: DDPMScheduler, batch: NoisedBatch, cond: Condition = class_condition
) -> torch.Tensor:
    """||target - eps_theta(x_t, t, c)||^2 with x_t built from the batch's own noise (L_r; also `uniform` L_f)."""
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    return F.mse_loss(
        unet(x_t, batch.timesteps, **cond(batch.labels)).sample.float(), regression_target(scheduler, batch).float()
    )


def remap_forget_loss(
    unet: torch.nn.Module, scheduler: DDPMScheduler, batch: NoisedBatch, cond: Condition = class_condition
) -> torch.Tensor:
    """||eps_theta(x_t, t, c_f) - sg[eps_theta(x_t, t, c_m)]||^2: denoise the forgotten condition like a substitute
    (class or anchor prompt)."""
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    with torch.no_grad():
        target = unet(x_t, batch.timesteps, **cond(batch.substitute)).sample.float()
    return F.mse_loss(unet(x_t, batch.timesteps, **cond(batch.labels)).sample.float(), target)


# `uniform` (paper v1/v2) is the diffusion loss on a batch whose noise was drawn from U[0, 1).
FORGET_LOSSES: dict[str, Callable[[torch.nn.Module, DDPMScheduler, NoisedBatch, Condition], torch.Tensor]] = {
    "remap": remap_forget_loss,
    "uniform": diffusion_loss,
}
