"""The denoising loss that attacks optimise: the plain DDPM objective on a few labelled images, over chosen parameters."""

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from tqdm.auto import tqdm


def fit_denoising(unet: torch.nn.Module, scheduler: DDPMScheduler, images: torch.Tensor, labels: torch.Tensor, params: Iterable[torch.nn.Parameter],
                  steps: int, lr: float, batch_size: int, seed: int, desc: str, progress: bool = False) -> list[float]:
    """`steps` Adam steps of the epsilon loss on (images, class labels), batches drawn with replacement from `seed`;
    returns the loss curve. The UNet is left in eval mode."""
    params = list(params)
    optimizer = torch.optim.Adam(params, lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    unet.train()
    for _ in tqdm(range(steps), desc=desc, disable=not progress):
        idx = torch.randint(len(images), (batch_size,), generator=generator)
        x0 = images[idx]
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t, class_labels=labels[idx]).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    unet.eval()
    return losses
