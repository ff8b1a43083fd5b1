"""Resumable unlearning state: trainable weights, EMA shadow and RNG in safetensors, the optimizer
state through torch.save (read back with weights_only=True), and a JSON header. One folder per
checkpoint, renamed into place when complete; only the newest is kept.
"""

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from erasediff.util.atomic import atomic_dir
from erasediff.util.errors import ErasediffError

PREFIX = "step-"


def latest_checkpoint(root: Path) -> Path | None:
    done = sorted(p for p in Path(root).glob(f"{PREFIX}*") if (p / "state.json").is_file())
    return done[-1] if done else None


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint was written after (what a resumed run continues from)."""
    return int(json.loads((Path(path) / "state.json").read_text())["step"])


def save_checkpoint(
    root: Path,
    step: int,
    params: dict[str, torch.Tensor],
    ema: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    config_hash: str,
) -> Path:
    target = Path(root) / f"{PREFIX}{step:08d}"
    with atomic_dir(target, replace=True) as scratch:
        save_file({k: v.detach().cpu().contiguous() for k, v in params.items()}, scratch / "trainable.safetensors")
        if ema is not None:
            save_file({k: v.cpu().contiguous() for k, v in ema.items()}, scratch / "ema.safetensors")
        torch.save(optimizer.state_dict(), scratch / "optimizer.pt")
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng.update({f"cuda_{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
        save_file(rng, scratch / "rng.safetensors")
        (scratch / "state.json").write_text(json.dumps({"step": step, "config_hash": config_hash}))
    for old in Path(root).glob(f"{PREFIX}*"):
        if old != target:
            shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(
    path: Path,
    params: dict[str, torch.nn.Parameter],
    ema: dict[str, torch.Tensor] | None,
    optimizer: torch.optim.Optimizer,
    config_hash: str,
) -> int:
    """Restore everything in place and return the step to continue from."""
    state = json.loads((path / "state.json").read_text())
    if state["config_hash"] != config_hash:
        raise ErasediffError(
            f"checkpoint {path} was written by a different unlearning config; use a new output_dir or delete it"
        )
    weights = load_file(path / "trainable.safetensors")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(weights[name])
        if ema is not None:
            for name, value in load_file(path / "ema.safetensors").items():
                ema[name].copy_(value)
    optimizer.load_state_dict(torch.load(path / "optimizer.pt", weights_only=True))
    rng = load_file(path / "rng.safetensors")
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available() and "cuda_0" in rng:
        torch.cuda.set_rng_state_all([rng[f"cuda_{i}"] for i in range(torch.cuda.device_count()) if f"cuda_{i}" in rng])
    return int(state["step"])
