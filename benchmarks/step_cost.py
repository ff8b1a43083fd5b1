"""Seconds per EraseDiff update vs one plain fine-tuning step on the same batch (digits DDPM, CPU).

Every variant takes the same 64 retain + 64 forget images, noise and timesteps, the same Adam and
the same gradient clipping. Variants are timed interleaved, round after round, and the median is
reported, so the ratios come from one run on one machine state. Target: EraseDiff (K=0) <= 2.2x.
"""

import argparse
import copy
import statistics
import time
from collections.abc import Callable

import torch

from erasediff.util.offline import go_offline

go_offline()

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.defaults.digits_models import digits_default
from erasediff.method.losses import NoisedBatch, diffusion_loss, draw_batch, remap_forget_loss
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.method.update import erasediff_update, inner_value_gap


def concat(a: NoisedBatch, b: NoisedBatch) -> NoisedBatch:
    return NoisedBatch(
        *(
            torch.cat([x, y])
            for x, y in [(a.x0, b.x0), (a.labels, b.labels), (a.noise, b.noise), (a.timesteps, b.timesteps)]
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()

    model, _, _ = digits_default(progress=False)
    scheduler, settings = model.scheduler, UnlearnSettings()
    forget, retain = split_forget_retain(load_digits_split()[0], [3], model.num_classes)
    gen = torch.Generator().manual_seed(0)
    T = scheduler.config.num_train_timesteps
    rb = draw_batch(retain, args.batch_size, 0, 0, T, gen)
    fb = draw_batch(forget, args.batch_size, 0, 1, T, gen, substitute_classes=torch.tensor([0, 1, 2, 4, 5, 6, 7, 8, 9]))
    both = concat(rb, fb)

    unet = copy.deepcopy(model.unet).train()
    phi = copy.deepcopy(unet)
    params = list(unet.parameters())
    optimizer = torch.optim.Adam(params, lr=settings.lr)

    def apply() -> None:
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def finetune(batch: NoisedBatch) -> Callable[[], None]:
        def step() -> None:
            diffusion_loss(unet, scheduler, batch).backward()
            apply()

        return step

    def erasediff(k: int) -> Callable[[], None]:
        def step() -> None:
            stats = erasediff_update(
                params,
                lambda: diffusion_loss(unet, scheduler, rb),
                lambda: remap_forget_loss(unet, scheduler, fb),
                "adaptive",
                0.1,
                0.0,
            )
            if k:
                inner_value_gap(
                    unet,
                    phi,
                    list(phi.parameters()),
                    lambda m: remap_forget_loss(m, scheduler, fb),
                    stats.forget_loss,
                    k,
                    settings.lr,
                )
            apply()

        return step

    variants = {
        f"fine-tune, same batch ({2 * args.batch_size} = retain + forget)": finetune(both),
        f"fine-tune, retain half only ({args.batch_size})": finetune(rb),
        "EraseDiff K=0": erasediff(0),
        "EraseDiff K=2": erasediff(2),
    }
    times: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(args.rounds + 2):
        for name, step in variants.items():
            start = time.perf_counter()
            step()
            if round_ >= 2:  # two warm-up rounds
                times[name].append(time.perf_counter() - start)

    medians = {name: statistics.median(ts) for name, ts in times.items()}
    baseline, retain_only = list(medians.values())[:2]
    print(f"step cost on CPU ({torch.get_num_threads()} threads), median of {args.rounds} interleaved rounds")
    print(f"| {'variant':<46} | {'s/step':>7} | {'x same-batch fine-tune':>22} | {'x retain-only fine-tune':>23} |")
    print(f"|{'-' * 48}|{'-' * 9}|{'-' * 24}|{'-' * 25}|")
    for name, sec in medians.items():
        print(f"| {name:<46} | {sec:>7.3f} | {sec / baseline:>21.2f}x | {sec / retain_only:>22.2f}x |")
    ratio = medians["EraseDiff K=0"] / baseline
    print(
        f"EraseDiff K=0 vs same-batch fine-tune: {ratio:.2f}x (target <= 2.2x): {'met' if ratio <= 2.2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
