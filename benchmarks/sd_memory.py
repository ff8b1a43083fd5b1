"""Peak memory of one EraseDiff update on the Stable Diffusion 1.5 UNet (860M parameters, built from its published
configuration with random weights: nothing is downloaded), per unlearning configuration, at 512 px (64x64 latents),
batch 1 + 1, with its decomposition; with `--unet sdxl`, on the SDXL UNet (2.6B parameters) at 1024 px (128x128
latents, with SDXL's added text and time conditioning).

Each configuration runs in a fresh process: the SD 1.5 UNet is built (the frozen original the caller holds; on a GPU
node it stays in host memory), then one update of `unlearn_unet` runs with the configuration's settings. The peak is
what the update added on top of that: on CUDA the allocator's peak; on the CPU the rise of the process's peak resident
memory, the proxy for the GPU memory the same tensors take (weights, gradients, optimizer states, copies,
activations). The simulated attacker of the relearning term takes 1 step here instead of 5 (the same tensors are
alive; fewer passes). Random weights make every quality number meaningless; only bytes are read here.

Decomposition, counted from the trainable parameters: weights (the working copy), gradients (the two gradient-sized
buffers alive at the peak: g_r and g_f, or the relearning term's saved weights and its gradient while it runs),
optimizer states (Adam: two fp32 states; 8-bit Adam: two bytes a parameter), the frozen original (retain anchor) and
the inner copy (inner steps); activations and temporaries are the measured remainder.

    python benchmarks/sd_memory.py                         # every configuration, on this machine's CPU
    python benchmarks/sd_memory.py --device cuda --publish # on a GPU node; docs/results/sd-memory.md
    pip install --target /tmp/bnb --no-deps "bitsandbytes>=0.49"   # 8-bit Adam on the CPU too (the lock pins 0.48)
    PYTHONPATH=/tmp/bnb HF_HUB_OFFLINE=1 python benchmarks/sd_memory.py --publish
    python benchmarks/sd_memory.py --configs shipped xattn # a subset
    python benchmarks/sd_memory.py --width-divisor 10      # a reduced-width SD UNet (what a test checks)
    python benchmarks/sd_memory.py --unet sdxl --publish   # SDXL; docs/results/sd-memory-sdxl.md
"""

import argparse
import json
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
CONFIGS = {  # the xattn rows fit a 23 GB host, so checkpointing's and precision's effect on activations is measured
    "xattn": {"params": {"preset": "xattn"}, "optimizer": "adam"},
    "xattn, no checkpointing": {"params": {"preset": "xattn"}, "optimizer": "adam", "gradient_checkpointing": False},
    "xattn, fp32": {"params": {"preset": "xattn"}, "optimizer": "adam", "mixed_precision": "no"},
    "xattn, no relearning term": {"params": {"preset": "xattn"}, "optimizer": "adam", "relearn": None},
    "xattn, retain anchor": {"params": {"preset": "xattn"}, "optimizer": "adam", "retain_anchor": 3.0},
    "LoRA r4 (noxattn)": {"adapter": {"rank": 4}, "optimizer": "adam"},
    "shipped": {},
    "shipped, adam": {"optimizer": "adam"},
    "full": {"params": {"preset": "full"}, "optimizer": "adam"},
    "noxattn": {"optimizer": "adam"},
    "no checkpointing": {"gradient_checkpointing": False, "optimizer": "adam"},
    "fp32": {"mixed_precision": "no", "optimizer": "adam"},
    "no relearning term": {"relearn": None, "optimizer": "adam"},
    "with retain anchor": {"retain_anchor": 3.0, "optimizer": "adam"},
}


def settings_of(name: str):
    from erasediff.method.unlearning_settings import UnlearnSettings

    return UnlearnSettings(
        **{**SHIPPED, **CONFIGS[name], "steps": 2, "batch_size": 1, "forget_batch_size": 1, "lr": 1e-5}
    )


def counted(name: str, width_divisor: int = 1, unet_name: str = "sd15") -> dict:
    """The configuration's tensors other than activations, counted on a UNet built on the meta device (no memory):
    the working weights, the two gradient-sized buffers alive at the peak (g_r and g_f, which the relearning term's
    gradient is summed into; the term itself holds its saved weights and one gradient), the optimizer's states, the
    frozen original's trainable subset (retain anchor), the inner copy."""
    import torch
    from diffusers import UNet2DConditionModel
    from sd_shapes import unet_config

    from erasediff.method.params import select_parameters
    from erasediff.models.lora import add_adapter

    settings = settings_of(name)
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config(unet_name, width_divisor))
        trainable = select_parameters(unet, settings.params.preset, settings.params.include, settings.params.exclude)
        if settings.adapter is not None:
            trainable = add_adapter(unet, trainable, settings.adapter)
    weights = sum(p.numel() * 4 for p in unet.parameters())
    train = sum(p.numel() * 4 for p in trainable.values())
    return {
        "trainable M": train / 4e6,
        "optimizer": settings.optimizer,
        "weights": weights,
        "gradients": 2 * train,
        "optimizer states": 2 * train if settings.optimizer == "adam" else train // 2,
        "frozen original": train if settings.retain_anchor or settings.method == "esd" else 0,
        # phi (inner steps): its trainable tensors, their gradients and two Adam moments
        "inner copy": 4 * train if settings.inner_steps else 0,
    }


def measure(name: str, device: str, width_divisor: int = 1, unet_name: str = "sd15") -> dict:
    """One configuration, in this process: the peak of two updates (the second runs with the optimizer's states)."""
    import torch
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from sd_shapes import SDXL_TEXT_EMBEDS, SDXL_TIME_IDS, unet_config

    from erasediff.data.image_sets import LabeledImages
    from erasediff.method.loop import unlearn_unet

    settings = settings_of(name)
    config = unet_config(unet_name, width_divisor)
    unet = UNet2DConditionModel(**config).requires_grad_(False)  # the caller's original; on a GPU node, on the host
    g = torch.Generator().manual_seed(0)
    table = torch.randn(3, 77, config["cross_attention_dim"], generator=g).to(device)
    added = {  # SDXL's pooled text embedding and size/crop ids, per conditioning row
        "text_embeds": torch.randn(3, SDXL_TEXT_EMBEDS, generator=g).to(device),
        "time_ids": torch.tensor([[1024.0, 1024.0, 0.0, 0.0, 1024.0, 1024.0]] * 3).to(device),
    }
    assert added["time_ids"].shape[1] == SDXL_TIME_IDS

    def cond(ids: torch.Tensor) -> dict:
        ids = ids.to(device)
        found = {"encoder_hidden_states": table[ids]}
        if config.get("addition_embed_type") == "text_time":
            found["added_cond_kwargs"] = {k: v[ids] for k, v in added.items()}
        return found

    size = config["sample_size"]
    data = [LabeledImages(torch.randn(1, 4, size, size, generator=g), torch.full((1,), i)) for i in (0, 1)]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = peak_rss()
    started = time.perf_counter()
    unlearn_unet(
        unet,
        DDPMScheduler(),
        cond,
        data[0],
        data[1],
        torch.tensor([2]),
        settings,
        {},
        progress=False,
    )
    seconds = (time.perf_counter() - started) / settings.steps
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated() - before
    else:
        peak = peak_rss() - before
    return {"peak": peak, "seconds": seconds}


def installed_bnb() -> str | None:
    """The installed bitsandbytes release, None without one."""
    try:
        import bitsandbytes
    except ImportError:
        return None
    return bitsandbytes.__version__


def bnb_version() -> str:
    """Which bitsandbytes ran the 8-bit Adam rows: the lock's release refuses CPU tensors, 0.49 and later run them
    (the same states: two uint8 moments and an fp32 scale per 256 values)."""
    installed = installed_bnb()
    if installed is None:
        return "bitsandbytes is not installed"
    locked = next(
        (
            line.split("==")[1].split()[0]
            for line in (ROOT / "requirements.lock").read_text().splitlines()
            if line.startswith("bitsandbytes==")
        ),
        None,
    )
    if installed == locked:
        return f"bitsandbytes {locked}, the lock's"
    return f"bitsandbytes {installed}, put over the lock's {locked} for this run: see the docstring"


def peak_rss() -> int:
    """This process's peak resident bytes (VmHWM). Not getrusage's ru_maxrss: Linux carries that over fork and exec,
    so a child of a large process (a test run) would read its parent's peak and see no rise."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def rss(pid: int) -> int:
    """Resident bytes of a process, 0 once it is gone."""
    try:
        line = next(x for x in Path(f"/proc/{pid}/status").read_text().splitlines() if x.startswith("VmRSS:"))
    except (OSError, StopIteration):
        return 0
    return int(line.split()[1]) * 1024


def run_child(name: str, device: str, limit_gib: float, width_divisor: int = 1, unet_name: str = "sd15") -> dict:
    """One configuration in a fresh process; stopped when its resident memory passes `limit_gib` (the host's
    memory, not the GPU's: a configuration that does not fit this host is reported as such, not swapped)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(
            [sys.executable, __file__, "--one", name, "--device", device, "--width-divisor", str(width_divisor)]
            + ["--unet", unet_name],
            stdout=out,
            stderr=err,
            cwd=ROOT,
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
    parser.add_argument("--width-divisor", type=int, default=1, help="divide the UNet's channel widths (tests: 10)")
    parser.add_argument("--unet", default="sd15", choices=["sd15", "sdxl"], help="SD 1.5 at 512 px or SDXL at 1024 px")
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.device, args.width_divisor, args.unet)))
        return
    from results_page import publish

    parts = ["weights", "gradients", "optimizer states", "frozen original", "inner copy"]
    rows = []
    for name in tqdm(args.configs, desc="configurations"):
        found = run_child(name, args.device, args.host_limit_gib, args.width_divisor, args.unet)
        row = {"config": name, **counted(name, args.width_divisor, args.unet), **found}
        if "peak" in found:
            row["activations and temporaries"] = found["peak"] - sum(row[k] for k in parts)
        rows.append(row)
        tqdm.write(json.dumps(row))
    lines = [
        "| configuration | optimizer | trainable (M) | "
        + " | ".join(f"{k} GiB" for k in parts)
        + " | counted GiB | peak GiB (measured) | activations and temporaries GiB | s/update |",
        "|---|---|---:|" + "---:|" * (len(parts) + 4),
    ]
    for r in rows:
        total = sum(r[k] for k in parts)
        measured = (
            f"{r['peak'] / GIB:.2f} | {r['activations and temporaries'] / GIB:.2f} | {r['seconds']:.0f}"
            if "peak" in r
            else f"not measured: {r['failed']} | | "
        )
        lines.append(
            f"| {r['config']} | {r['optimizer']} | {r['trainable M']:.0f} | "
            + " | ".join(f"{r[k] / GIB:.2f}" for k in parts)
            + f" | {total / GIB:.2f} | {measured} |"
        )
    what = "the SD 1.5 UNet at 512 px" if args.unet == "sd15" else "the SDXL UNet at 1024 px"
    stem = "sd-memory" if args.unet == "sd15" else "sd-memory-sdxl"
    report = "\n".join(
        [
            f"One EraseDiff update on {what}, batch 1 + 1, device `{args.device}` (on the CPU: the "
            "rise of peak resident memory over the built model, the proxy for the GPU memory of the same tensors). "
            f"UnlearnCanvas measured EraseDiff on SD 1.5 at {UNLEARN_CANVAS_GIB} GB. Components are counted from the "
            "trainable parameters (fp32); activations and temporaries are the measured peak minus the counted part. "
            "A configuration that does not fit this host's memory has its counted part only (a lower bound).",
            "",
            f"8-bit Adam rows: {bnb_version()}.",
            "",
            *lines,
        ]
    )
    title = "SD 1.5 update memory" if args.unet == "sd15" else "SDXL update memory"
    publish(ROOT / "benchmarks" / "results", stem, report, rows, stem if args.publish else None, title)


if __name__ == "__main__":
    main()
