"""The unlearning loop: EraseDiff updates on `accelerate`, seeded, checkpointed and resumable.

Every random draw of step s comes from a generator seeded by (seed, s, process), so a resumed run
replays exactly the batches, noise and timesteps an uninterrupted run would have seen.
"""

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import AutocastKwargs
from diffusers import DDPMScheduler
from tqdm.auto import tqdm

from erasediff.data.image_sets import LabeledImages
from erasediff.method.losses import FORGET_LOSSES, Condition, draw_batch
from erasediff.method.params import select_parameters
from erasediff.method.robust.forget_on_retain import with_retain_rows
from erasediff.method.runtime.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from erasediff.method.runtime.probe import ProbeFactory, RetainGuard, loss_probe
from erasediff.method.runtime.processes import mean_across_ranks
from erasediff.method.step import MethodUpdate
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.method.update import UpdateStats, inner_value_gap, no_reduce
from erasediff.models.lora import add_adapter
from erasediff.util.errors import DataError, DivergedError, ErasediffError
from erasediff.util.hashing import config_hash

# Autocast's weight cache keeps the first low-precision copy of each trainable weight for the whole region. The
# relearning term's simulated attacker and q_hat's inner steps move weights in place inside it, so under bf16 they
# would be evaluated at stale copies (the attack a no-op); and the cache holds a bf16 copy of every trainable weight
# (1.5 GiB on the SD 1.5 UNet with the noxattn preset).
FRESH_CASTS = AutocastKwargs(cache_enabled=False)


@dataclass(kw_only=True)
class StepMetrics(UpdateStats):
    """What the pipeline logs per step (docs/method.md: L_r, L_f, lambda_t, <g_r,g_f>, both cosines, q_hat, lr, grad
    norm),
    the seconds spent updating so far (probes excluded), and the probe's readings on the steps it runs."""

    step: int
    lr: float
    wall_s: float
    q_hat: float | None = None
    probe: dict[str, float] | None = None

    def as_dict(self) -> dict[str, float]:
        row = {k: v for k, v in asdict(self).items() if v is not None and k != "probe"}
        return {**row, **(self.probe or {})}

    @classmethod
    def from_row(cls, row: dict[str, float]) -> "StepMetrics":
        """The inverse of `as_dict` (one metrics.jsonl line): keys that are not fields are probe readings."""
        names = {f.name for f in fields(cls)} - {"probe"}
        probe = {k: v for k, v in row.items() if k not in names}
        return cls(**{k: v for k, v in row.items() if k in names}, probe=probe or None)


MetricsCallback = Callable[[StepMetrics], None]


def _check_finite(step: int, stats: UpdateStats) -> None:
    values = {"L_r": stats.retain_loss, "L_f": stats.forget_loss, "grad norm": stats.grad_norm}
    bad = {k: v for k, v in values.items() if v is not None and not math.isfinite(v)}
    if bad:
        raise DivergedError(
            f"unlearning diverged at step {step}: non-finite " + ", ".join(f"{k}={v}" for k, v in bad.items())
        )


def make_optimizer(params: list[torch.nn.Parameter], settings: UnlearnSettings) -> torch.optim.Optimizer:
    if settings.optimizer == "adam8bit":
        try:
            import bitsandbytes as bnb
        except ImportError as exc:
            raise ErasediffError(
                "unlearning.optimizer adam8bit needs bitsandbytes: pip install bitsandbytes (CUDA nodes), or use adam"
            ) from exc
        on_cpu = not params or params[0].device.type != "cuda"  # older releases fail mid-step on CPU tensors
        if on_cpu and not eight_bit_on_cpu(bnb.__version__):
            raise ErasediffError(
                f"unlearning.optimizer adam8bit runs on CUDA nodes only with bitsandbytes {bnb.__version__} "
                "(8-bit states on the CPU need 0.49 or later); use adam here"
            )
        return bnb.optim.Adam8bit(params, lr=settings.lr)
    return torch.optim.Adam(params, lr=settings.lr)


def eight_bit_on_cpu(bitsandbytes_version: str) -> bool:
    """Whether this bitsandbytes runs its 8-bit optimizers on CPU tensors: 0.49 and later do; the lock pins 0.48
    (pyproject.toml says why), whose 8-bit states need CUDA."""
    return tuple(int(part) for part in bitsandbytes_version.split(".")[:2]) >= (0, 49)


def split_held_out(retain: LabeledImages, n: int, seed: int) -> tuple[LabeledImages, LabeledImages]:
    """(training part, probe part): `n` retain items, chosen by `seed`, that unlearning never trains on."""
    if n >= len(retain):
        raise DataError(
            f"unlearning.probe.held_out={n} leaves nothing of the {len(retain)}-item retain set to train on"
        )
    order = torch.randperm(len(retain), generator=torch.Generator().manual_seed(seed + 7_777))
    return LabeledImages(retain.images[order[n:]], retain.labels[order[n:]]), LabeledImages(
        retain.images[order[:n]], retain.labels[order[:n]]
    )


def unlearn_unet(
    base_unet: torch.nn.Module,
    scheduler: DDPMScheduler,
    cond: Condition,
    forget: LabeledImages,
    retain: LabeledImages,
    substitutes: torch.Tensor | None,
    settings: UnlearnSettings,
    request_key: dict,
    *,
    null_id: int | None = None,
    probe: ProbeFactory | None = None,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    callback: MetricsCallback | None = None,
    stop_after: int | None = None,
    progress: bool = True,
) -> torch.nn.Module:
    """EraseDiff (or the configured baseline) on any diffusers UNet: an unlearned copy of `base_unet`
    (on the CPU, eval mode).

    `forget`/`retain` hold training inputs (images or cached latents) with condition ids, `cond` maps
    ids to UNet arguments, `substitutes` are the ids `remap` may aim at, `null_id` is the
    unconditional id (ESD), and `request_key` (with the settings and set sizes) guards checkpoint
    resumption. Under `accelerate launch` (`settings.processes` > 1, see runtime/processes.py) every
    process draws its own batches and gradients are averaged across processes before lambda_t is
    formed, so all ranks apply the same update; `callback` is then called on every rank. With `settings.probe.every`, a
    probe (held-out retain loss by default; `probe` builds
    another from the base UNet) is read every that many steps, and the guard may end the run early:
    then the probed weights are returned (EMA, if any, is dropped), and the guard's best weights do
    not survive a resume. With `settings.adapter`, a LoRA on the selected layers trains instead of their
    weights and the returned copy carries it unfused (`models/text_pipeline.save_text_pipeline` stores it).
    """
    accelerator = Accelerator(
        mixed_precision=settings.mixed_precision, cpu=not torch.cuda.is_available(), kwargs_handlers=[FRESH_CASTS]
    )
    if accelerator.num_processes != settings.processes:
        raise ErasediffError(
            f"unlearning.processes is {settings.processes} but this run has {accelerator.num_processes} process(es): "
            "data-parallel unlearning starts through the pipeline's unlearn step (erasediff.method.runtime.processes)"
        )
    torch.manual_seed(settings.seed)
    started = time.perf_counter()
    unet = copy.deepcopy(base_unet).to(accelerator.device).train()
    unet.requires_grad_(False)
    if settings.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    named = select_parameters(unet, settings.params.preset, settings.params.include, settings.params.exclude)
    if settings.adapter is not None:  # a LoRA on the selected layers trains instead of their weights
        named = add_adapter(unet, named, settings.adapter)
    params = list(named.values())
    for p in params:
        p.requires_grad_(True)
    optimizer = make_optimizer(params, settings)
    ema = {k: p.detach().clone() for k, p in named.items()} if settings.ema_decay else None
    inner = settings.inner_steps > 0 and settings.method == "erasediff"  # q_hat: phi is a copy of `params` alone
    reduce = partial(mean_across_ranks, accelerator) if accelerator.num_processes > 1 else no_reduce

    guard, probing = None, time.perf_counter()
    if settings.probe.every:
        if probe is None:
            retain, held_out = split_held_out(retain, settings.probe.held_out, settings.seed)
            probe_subs = substitutes if substitutes is not None else torch.tensor([null_id])
            probe = loss_probe(unet, scheduler, cond, held_out, forget, probe_subs, settings.probe, settings.seed)
        else:
            probe = probe(unet)
        guard = RetainGuard(probe, settings.probe, named)
    probing = time.perf_counter() - probing  # the probe's base reading is not update time
    update = MethodUpdate(
        settings, unet, params, scheduler, cond, forget, null_id, reduce
    )  # base weights: SalUn mask, ESD original

    run_hash = config_hash(
        {"settings": settings.model_dump(), **request_key, "forget_n": len(forget), "retain_n": len(retain)}
    )
    start = 0
    if checkpoint_dir is not None and (found := latest_checkpoint(checkpoint_dir)) is not None:
        start = load_checkpoint(found, named, ema, optimizer, run_hash)

    device, T = accelerator.device, scheduler.config.num_train_timesteps
    end = settings.steps if stop_after is None else min(settings.steps, stop_after)
    uniform = settings.method == "erasediff" and settings.forget_loss == "uniform"
    forget_loss = FORGET_LOSSES[settings.forget_loss]
    updating = time.perf_counter() - started - probing  # seconds spent on set-up and updates, probes excluded

    for step in tqdm(
        range(start, end),
        desc=settings.method,
        initial=start,
        total=settings.steps,
        disable=not (progress and accelerator.is_main_process),
    ):
        tick = time.perf_counter()
        generator = torch.Generator().manual_seed(
            int(config_hash([settings.seed, step, accelerator.process_index], 15), 16)
        )
        stream = settings.seed * 7919 + accelerator.process_index
        retain_batch = draw_batch(retain, settings.batch_size, step, stream, T, generator).to(device)
        forget_batch = draw_batch(
            forget,
            settings.forget_batch_size,
            step,
            stream + 1,
            T,
            generator,
            uniform_noise=uniform,
            substitute_classes=substitutes,
        )
        if settings.forget_on_retain:  # forget_on_retain, against the guidance sweep (robust/forget_on_retain.py)
            forget_batch = with_retain_rows(forget_batch, retain, settings.forget_on_retain, generator)
        forget_batch = forget_batch.to(device)
        with accelerator.autocast():
            stats = update(retain_batch, forget_batch, generator)
            _check_finite(step, stats)
            q_hat = None
            if inner:
                phi_forget_loss = partial(
                    forget_loss, scheduler=scheduler, batch=forget_batch, cond=cond
                )  # L_f of whichever UNet it is given
                q_hat = inner_value_gap(
                    unet,
                    params,
                    phi_forget_loss,
                    stats.forget_loss,
                    settings.inner_steps,
                    settings.inner_lr or settings.lr,
                )
        if settings.grad_clip:
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if ema is not None:
            with torch.no_grad():
                for k, p in named.items():
                    ema[k].lerp_(p.detach(), 1 - settings.ema_decay)
        updating += time.perf_counter() - tick
        done = step + 1
        readings, stop = (
            guard.check(unet, done) if guard is not None and done % settings.probe.every == 0 else (None, False)
        )
        if callback is not None:
            callback(
                StepMetrics(
                    **asdict(stats),
                    step=done,
                    lr=optimizer.param_groups[0]["lr"],
                    wall_s=updating,
                    q_hat=q_hat,
                    probe=readings,
                )
            )
        if stop:
            ema = None
            restored = (
                f", weights of step {int(readings['probe_restored_step'])} restored"
                if "probe_restored_step" in readings
                else ""
            )
            tqdm.write(
                f"retain probe: forgetting achieved but held-out utility {readings['probe_degradation']:.1%} worse "
                "than the base "
                f"(bound {settings.probe.max_degradation:.1%}); stopped at step {done}{restored}"
            )
            break
        if (
            checkpoint_dir is not None
            and checkpoint_every
            and (done % checkpoint_every == 0 or done == end)
            and done < settings.steps
        ):
            if accelerator.is_main_process:
                save_checkpoint(checkpoint_dir, done, named, ema, optimizer, run_hash)

    if ema is not None:
        with torch.no_grad():
            for k, p in named.items():
                p.copy_(ema[k])
    unet.requires_grad_(False)
    if settings.gradient_checkpointing:
        unet.disable_gradient_checkpointing()
    return unet.eval().cpu()
