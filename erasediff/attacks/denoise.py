"""The denoising loss that attacks optimise: the plain diffusion objective on a few images, over chosen parameters."""

from collections.abc import Callable, Iterable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from torch.utils.hooks import RemovableHandle
from tqdm.auto import tqdm

Condition = Callable[
    [torch.Tensor], dict
]  # batch indices -> the UNet's conditioning kwargs (class_labels, encoder_hidden_states)


def denoising_target(scheduler: DDPMScheduler, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """What the UNet predicts: the noise, or the velocity for v-prediction models (SD 2.x 768)."""
    return scheduler.get_velocity(x0, noise, t) if scheduler.config.prediction_type == "v_prediction" else noise


def fit_denoising(
    unet: torch.nn.Module,
    scheduler: DDPMScheduler,
    images: torch.Tensor,
    condition: Condition,
    params: Iterable[torch.nn.Parameter],
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
    desc: str,
    progress: bool = False,
    readouts: dict[int, Callable[[int], None]] | None = None,
) -> list[float]:
    """`steps` Adam steps of the denoising loss on `images` (pixels or latents) under `condition(batch indices)`,
    batches drawn with replacement from `seed`; returns the loss curve. `readouts[s](s)` is called after step s (an
    attack read at several budgets from one run; reading draws nothing from this run's random stream). The UNet is
    left in eval mode."""
    hooks = steps_in_backward(params, lr)
    generator = torch.Generator().manual_seed(seed)  # drawn on the CPU: the same batches whatever the UNet's device
    device = next(unet.parameters()).device
    losses = []
    unet.train()
    try:
        for _ in tqdm(range(steps), desc=desc, disable=not progress):
            idx = torch.randint(len(images), (batch_size,), generator=generator)
            x0 = images[idx]
            noise = torch.randn(x0.shape, generator=generator)
            t = torch.randint(0, scheduler.config.num_train_timesteps, (batch_size,), generator=generator)
            x0, noise, t = x0.to(device), noise.to(device), t.to(device)
            loss = F.mse_loss(
                unet(scheduler.add_noise(x0, noise, t), t, **condition(idx)).sample,
                denoising_target(scheduler, x0, noise, t),
            )
            loss.backward()  # each parameter takes its Adam step in here (steps_in_backward)
            losses.append(loss.item())
            if readouts and len(losses) in readouts:
                readouts[len(losses)](len(losses))
                unet.train()
    finally:
        for hook in hooks:
            hook.remove()
        unet.eval()
    return losses


def steps_in_backward(params: Iterable[torch.nn.Parameter], lr: float) -> list[RemovableHandle]:
    """One Adam per parameter, stepped as soon as backward has accumulated that parameter's gradient, which is then
    freed: the same updates as one Adam over all of them (Adam is elementwise), without a gradient the size of the
    trainable weights alive at once (3.4 GB for SD 1.5's fp32 UNet). Autograd refuses a weight changed in place
    before a later backward node has read it, so the early steps cannot silently change a gradient."""

    def step(param: torch.nn.Parameter) -> None:
        optimizers[param].step()
        param.grad = None

    optimizers = {param: torch.optim.Adam([param], lr=lr) for param in params}
    return [param.register_post_accumulate_grad_hook(step) for param in optimizers]
