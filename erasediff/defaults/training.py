"""The update every base trainer here shares (the embedded digits DDPM, the tiny text-to-image model):
backward, clip, step, schedule, EMA.
"""

import torch


@torch.no_grad()
def ema_update(ema: dict[str, torch.Tensor], module: torch.nn.Module, decay: float) -> None:
    """Shadow weights of a training run: float tensors move towards the module's, others (counters) are copied."""
    for k, v in module.state_dict().items():
        ema[k].lerp_(v, 1 - decay) if v.is_floating_point() else ema[k].copy_(v)


def train_step(
    loss: torch.Tensor,
    module: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule,
    ema: dict[str, torch.Tensor],
    decay: float,
) -> None:
    """One update of a base trainer: backward, clip at 1.0, step, advance the LR schedule, move the EMA shadow."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    ema_update(ema, module, decay)
