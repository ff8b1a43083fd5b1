"""The two objectives of EraseDiff on a class-conditional model, and the batches they consume.

Condition dropout is never applied here: both losses see the true labels, so the null ("unconditional")
embedding that classifier-free guidance relies on is not retrained.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel

from .datasets import LabeledImages

ForgetLoss = Literal["remap", "uniform"]


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
        return NoisedBatch(move(self.x0), move(self.labels), move(self.noise), move(self.timesteps), move(self.substitute))


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


def diffusion_loss(unet: UNet2DModel, scheduler: DDPMScheduler, batch: NoisedBatch) -> torch.Tensor:
    """||noise - eps_theta(x_t, t, c)||^2 with x_t built from the batch's own noise (L_r; also `uniform` L_f)."""
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    return F.mse_loss(unet(x_t, batch.timesteps, class_labels=batch.labels).sample.float(), batch.noise)


def remap_forget_loss(unet: UNet2DModel, scheduler: DDPMScheduler, batch: NoisedBatch) -> torch.Tensor:
    """||eps_theta(x_t, t, c_f) - sg[eps_theta(x_t, t, c_m)]||^2: denoise the forgotten class like a substitute."""
    x_t = scheduler.add_noise(batch.x0, batch.noise, batch.timesteps)
    with torch.no_grad():
        target = unet(x_t, batch.timesteps, class_labels=batch.substitute).sample.float()
    return F.mse_loss(unet(x_t, batch.timesteps, class_labels=batch.labels).sample.float(), target)


# `uniform` (paper v1/v2) is the diffusion loss on a batch whose noise was drawn from U[0, 1).
FORGET_LOSSES: dict[str, Callable[[UNet2DModel, DDPMScheduler, NoisedBatch], torch.Tensor]] = {
    "remap": remap_forget_loss,
    "uniform": diffusion_loss,
}
