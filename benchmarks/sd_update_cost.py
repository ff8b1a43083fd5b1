"""Seconds per EraseDiff update and peak memory on an SD-1.5-shaped UNet (random weights, standard config).

    python benchmarks/sd_update_cost.py                 # GPU: 512x512 (64x64 latents), batch 8 + 8, bf16, with/without
    checkpointing,
                                                        # 8-bit Adam (with bitsandbytes); and the bytes a version stores
    python benchmarks/sd_update_cost.py --smoke         # CPU smoke run: the same code on a 1/8-width UNet, 32x32
    latents

Text embeddings and latents are random tensors of the real shapes: in the pipeline both are computed once by
the frozen text encoder and VAE before the loop, so the loop costs exactly what is measured here.
"""

import argparse
import time
from importlib.util import find_spec

import torch
from diffusers import DDPMScheduler, UNet2DConditionModel
from sd_shapes import CLIP_L, SD15_FP16_GB, SD15_UNET
from transformers import CLIPTextConfig, CLIPTextModel

from erasediff.data.image_sets import LabeledImages
from erasediff.method.loop import unlearn_unet
from erasediff.method.unlearning_settings import UnlearnSettings


def measure(
    unet: UNet2DConditionModel,
    latent: int,
    batch: int,
    steps: int,
    checkpointing: bool,
    precision: str,
    optimizer: str = "adam",
    tokens: int = 77,
) -> tuple[float, float]:
    """(seconds per update after the first, peak accelerator memory in GiB; 0 on CPU)."""
    dim = unet.config.cross_attention_dim
    g = torch.Generator().manual_seed(0)
    hidden = torch.randn(3, tokens, dim, generator=g)  # prompt table: forget caption, retain caption, anchor
    device = "cuda" if torch.cuda.is_available() else "cpu"
    table = hidden.to(device)
    data = {
        name: LabeledImages(torch.randn(4 * batch, 4, latent, latent, generator=g), torch.full((4 * batch,), i))
        for i, name in enumerate(("forget", "retain"))
    }
    settings = UnlearnSettings(
        steps=steps,
        batch_size=batch,
        forget_batch_size=batch,
        lr=1e-5,
        mixed_precision=precision,
        gradient_checkpointing=checkpointing,
        optimizer=optimizer,
        params={"preset": "noxattn"},
    )
    stamps = []
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    unlearn_unet(
        unet,
        DDPMScheduler(),
        lambda ids: {"encoder_hidden_states": table[ids]},
        data["forget"],
        data["retain"],
        torch.tensor([2]),
        settings,
        {},
        callback=lambda m: (torch.cuda.synchronize() if device == "cuda" else None, stamps.append(time.perf_counter())),
        progress=False,
    )
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else 0.0
    return (stamps[-1] - stamps[0]) / (len(stamps) - 1), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny width and latents, for a CPU check of the script")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    config = dict(SD15_UNET)
    latent = 64
    if args.smoke:
        config.update(block_out_channels=(32, 64, 128, 128), cross_attention_dim=96, sample_size=32)
        latent = 32
    unet = UNet2DConditionModel(**config)
    print(
        f"UNet parameters: {sum(p.numel() for p in unet.parameters()) / 1e6:.0f} M; latents {latent}x{latent} "
        f"({latent * 8}px); batch {args.batch} + {args.batch}"
    )
    print(f"{'precision':<9} {'checkpointing':<13} {'optimizer':<9} {'s/update':>9} {'peak GiB':>9}")
    runs = [(False, "adam"), (True, "adam")] + (
        [(True, "adam8bit")] if torch.cuda.is_available() and find_spec("bitsandbytes") else []
    )
    rows = []
    for checkpointing, optimizer in runs:
        seconds, peak = measure(unet, latent, args.batch, args.steps, checkpointing, "bf16", optimizer)
        rows.append((seconds, peak))
        print(f"{'bf16':<9} {str(checkpointing):<13} {optimizer:<9} {seconds:>9.3f} {peak:>9.2f}")
    (s0, m0), (s1, m1) = rows[:2]
    print(
        f"checkpointing: {s1 / s0:.2f}x time, {m1 / m0 if m0 else float('nan'):.2f}x peak memory"
        + ("" if len(runs) > 2 else "; 8-bit Adam not measured (needs CUDA and bitsandbytes)")
    )
    from storage_cost import counted_shares

    with torch.device("meta"):
        encoder = CLIPTextModel(CLIPTextConfig(**CLIP_L))
    share = counted_shares(SD15_UNET, [encoder])["noxattn"]
    print(
        f"stored per version (benchmarks/storage_cost.py): {100 * share:.1f} % of an SD 1.5 pipeline with the noxattn "
        "preset, "
        f"about {share * SD15_FP16_GB:.1f} GB of {SD15_FP16_GB} GB in fp16"
    )


if __name__ == "__main__":
    main()
