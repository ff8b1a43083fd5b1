"""Weights an attacker trains in place and gets back: saved to a scratch file first, copied back after each run and
however the attack ends. A copy of the module would hold a second set of weights beside the optimizer's states
(3.4 GB for SD 1.5's fp32 UNet); the file costs disk, and the copy back reads one tensor at a time."""

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from erasediff.util.workdir import scratch_dir


@contextmanager
def restored_weights(module: torch.nn.Module) -> Iterator[Callable[[], None]]:
    """Yields `restore`, which puts `module`'s saved weights and buffers back (call it between runs); it runs once
    more on the way out, and the scratch file is removed."""
    folder = scratch_dir("attack-weights-")
    try:
        path = folder / "weights.safetensors"
        save_file({name: tensor.contiguous() for name, tensor in module.state_dict().items()}, path)

        def restore() -> None:
            state = module.state_dict()  # views of the live tensors
            with safe_open(path, "pt") as saved, torch.no_grad():
                for name in saved.keys():
                    state[name].copy_(saved.get_tensor(name))

        try:
            yield restore
        finally:
            restore()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
