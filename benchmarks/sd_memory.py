"""Peak memory of one EraseDiff update on the Stable Diffusion 1.5 UNet (860M parameters, built from its published
configuration with random weights: nothing is downloaded), per unlearning configuration, at 512 px (64x64 latents),
batch 1 + 1, with its decomposition.

Each configuration runs in a fresh process: the SD 1.5 UNet is built (the frozen original the caller holds; on a GPU
node it stays in host memory), then one update of `unlearn_unet` runs with the configuration's settings. The peak is
what the update added on top of that: on CUDA the allocator's peak; on the CPU the rise of the process's peak resident
memory, the proxy for the GPU memory the same tensors take (weights, gradients, optimizer states, copies,
activations). The simulated attacker of the relearning term takes 1 step here instead of 5 (the same tensors are
alive; fewer passes). Random weights make every quality number meaningless; only bytes are read here.

Decomposition: weights (the working copy), gradients and optimizer states (counted from the trainable parameters:
Adam holds two fp32 states, 8-bit Adam two bytes a parameter), the relearning term's saved copy of the trainable
weights, the frozen original (retain anchor) and the inner copy (inner steps); activations and temporaries are the
remainder (with the second and third gradient buffers EraseDiff holds while it forms lambda).

    python benchmarks/sd_memory.py                         # every configuration, on this machine's CPU
    python benchmarks/sd_memory.py --device cuda --publish # on a GPU node; docs/results/sd-memory.md
    python benchmarks/sd_memory.py --configs shipped xattn # a subset
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm.auto import tqdm

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
UNLEARN_CANVAS_GIB = 27.8  # EraseDiff on SD 1.5, UnlearnCanvas (arXiv 2402.11846), GPU memory
SHIPPED = {  # configs/request_sd_nudity.yaml: recipe robust (text: the relearning term), its advanced block
    "forget_loss": "remap",
    "params": {"preset": "noxattn"},
    "mixed_precision": "bf16",
    "gradient_checkpointing": True,
    "optimizer": "adam8bit",
    "relearn": {"steps": 1, "weight": 3.0, "batch": 1},
}
CONFIGS = {
    "shipped": {},
    "shipped, adam": {"optimizer": "adam"},
    "full": {"params": {"preset": "full"}, "optimizer": "adam"},
    "noxattn": {"optimizer": "adam"},
    "xattn": {"params": {"preset": "xattn"}, "optimizer": "adam"},
    "LoRA r4 (noxattn)": {"adapter": {"rank": 4}, "optimizer": "adam"},
    "no checkpointing": {"gradient_checkpointing": False, "optimizer": "adam"},
    "fp32": {"mixed_precision": "no", "optimizer": "adam"},
    "no relearning term": {"relearn": None, "optimizer": "adam"},
    "with retain anchor": {"retain_anchor": 3.0, "optimizer": "adam"},
}


def measure(name: str, device: str) -> dict:
    """One configuration, in this process: bytes by component and the update's peak."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from sd_shapes import SD15_UNET

    from erasediff.data.image_sets import LabeledImages
    from erasediff.method.loop import unlearn_unet
    from erasediff.method.params import select_parameters
    from erasediff.method.unlearning_settings import UnlearnSettings

    settings = UnlearnSettings(
        **{**SHIPPED, **CONFIGS[name], "steps": 1, "batch_size": 1, "forget_batch_size": 1, "lr": 1e-5}
    )
    if device == "cpu" and settings.optimizer == "adam8bit":
        settings = settings.model_copy(update={"optimizer": "adam"})  # bitsandbytes' 8-bit Adam needs CUDA
    unet = UNet2DConditionModel(**SD15_UNET).requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    table = torch.randn(3, 77, SD15_UNET["cross_attention_dim"], generator=g).to(device)
    data = [LabeledImages(torch.randn(1, 4, 64, 64, generator=g), torch.full((1,), i)) for i in (0, 1)]
    weights = sum(p.numel() * p.element_size() for p in unet.parameters())
    trainable = select_parameters(unet, settings.params.preset, settings.params.include, settings.params.exclude)
    if settings.adapter is not None:
        from erasediff.models.lora import add_adapter

        probe = UNet2DConditionModel(**SD15_UNET)  # counting the adapter's parameters needs one on a copy
        trainable = add_adapter(probe, select_parameters(probe, settings.params.preset), settings.adapter)
    train_bytes = sum(p.numel() * 4 for p in trainable.values())
    states = 2 * train_bytes if settings.optimizer == "adam" else 2 * train_bytes // 4
    parts = {
        "weights": weights,
        "gradients": train_bytes,
        "optimizer states": states,
        "relearning copy": train_bytes if settings.relearn is not None else 0,
        "frozen original": weights if settings.retain_anchor else 0,
        "inner copy": weights if settings.inner_steps else 0,
    }
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    started = time.perf_counter()
    unlearn_unet(
        unet,
        DDPMScheduler(),
        lambda ids: {"encoder_hidden_states": table[ids.to(device)]},
        data[0],
        data[1],
        torch.tensor([2]),
        settings,
        {},
        progress=False,
    )
    seconds = time.perf_counter() - started
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    parts["activations and temporaries"] = peak - sum(parts.values())
    return {
        "config": name,
        "optimizer": settings.optimizer,
        "trainable M": sum(p.numel() for p in trainable.values()) / 1e6,
        "peak GiB": peak / GIB,
        "seconds": seconds,
        **{f"{k} GiB": v / GIB for k, v in parts.items()},
    }


def rss(pid: int) -> int:
    """Resident bytes of a process, 0 once it is gone."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


def run_child(name: str, device: str, limit_gib: float) -> dict:
    """One configuration in a fresh process; stopped when its resident memory passes `limit_gib` (the host's
    memory, not the GPU's: a configuration that does not fit this host is reported as such, not swapped)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, __file__, "--one", name, "--device", device], stdout=out, stderr=err, cwd=ROOT
        )
        over = False
        while child.poll() is None:
            if rss(child.pid) > limit_gib * GIB:
                child.kill()
                over = True
            time.sleep(0.2)
        out.seek(0), err.seek(0)
        if over:
            return {"config": name, "failed": f"over {limit_gib:.0f} GiB of host memory (stopped)"}
        if child.returncode != 0:
            lines = err.read().strip().splitlines() or [f"exit {child.returncode}"]
            return {"config": name, "failed": lines[-1]}
        return json.loads(out.read().strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS), metavar="CONFIG")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a child process: measure this configuration, print JSON
    parser.add_argument("--publish", action="store_true", help="write docs/results/sd-memory.md")
    parser.add_argument(
        "--host-limit-gib", type=float, default=20.0, help="stop a configuration past this much host memory"
    )
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device)))
        return
    from results_page import publish

    rows = []
    for name in tqdm(args.configs, desc="configurations"):
        rows.append(run_child(name, args.device, args.host_limit_gib))
        tqdm.write(json.dumps(rows[-1]))
    keys = [k for k in rows[0] if k.endswith("GiB")] if "failed" not in rows[0] else []
    keys = keys or [k for r in rows if "failed" not in r for k in r if k.endswith("GiB")][:8]
    lines = [
        "| configuration | optimizer | trainable (M) | " + " | ".join(keys) + " | s/update |",
        "|---|---|---:|" + "---:|" * (len(keys) + 1),
    ]
    for r in rows:
        if "failed" in r:
            lines.append(f"| {r['config']} | | | not measured: {r['failed']} |" + " |" * len(keys))
            continue
        lines.append(
            f"| {r['config']} | {r['optimizer']} | {r['trainable M']:.0f} | "
            + " | ".join(f"{r[k]:.2f}" for k in keys)
            + f" | {r['seconds']:.0f} |"
        )
    report = "\n".join(
        [
            f"One EraseDiff update on the SD 1.5 UNet at 512 px, batch 1 + 1, device `{args.device}` (on the CPU: the "
            "rise of peak resident memory over the built model, the proxy for the GPU memory of the same tensors). "
            f"UnlearnCanvas measured EraseDiff on SD 1.5 at {UNLEARN_CANVAS_GIB} GB. Components are counted from the "
            "trainable parameters; activations and temporaries are the remainder.",
            "",
            *lines,
        ]
    )
    publish(
        ROOT / "benchmarks" / "results",
        "sd-memory",
        report,
        rows,
        "sd-memory" if args.publish else None,
        "SD 1.5 update memory",
    )


if __name__ == "__main__":
    main()
