"""Text-to-image pipeline folders (SD 1.x/2.x, SDXL) from local paths: checked, loaded, and saved with a new UNet.

Before diffusers sees a folder, every component that model_index.json names is checked: its folder
exists and its weights are safetensors (a folder with only pickle weights is refused, never
unpickled). The unlearned result is the base folder's unchanged components plus the new UNet, so
`DiffusionPipeline.from_pretrained` loads it like the original. An adapter erasure (models/lora.py) keeps
the base's UNet byte for byte and adds the LoRA as `pytorch_lora_weights.safetensors`, diffusers' own format:
`load_text_to_image` fuses it, and plain diffusers does with `pipe.load_lora_weights(folder); pipe.fuse_lora()`.
"""

import json
import shutil
from pathlib import Path

import diffusers
import torch
from diffusers import DiffusionPipeline

from erasediff.models.class_model import META_FILE, PICKLE_SUFFIXES
from erasediff.models.lora import adapter_state, fused, has_adapter
from erasediff.util.atomic import atomic_dir
from erasediff.util.errors import ModelLoadError

INDEX = "model_index.json"
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' default weight name for save/load_lora_weights


REQUIRED = ("unet", "vae", "text_encoder", "tokenizer", "scheduler")


WEIGHTS = {
    "unet": "diffusion_pytorch_model",
    "vae": "diffusion_pytorch_model",
    "text_encoder": "model",
    "text_encoder_2": "model",
}


def _require_weights(folder: Path, stem: str) -> None:
    if (folder / f"{stem}.safetensors").is_file() or (folder / f"{stem}.safetensors.index.json").is_file():
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"{folder / pickles[0]} is a pickle checkpoint, which is never unpickled; convert it to safetensors as "
            f"{folder / stem}.safetensors"
        )
    raise ModelLoadError(
        f"missing weight file {folder / stem}.safetensors: stage the component's safetensors weights there"
    )


def check_pipeline_folder(path: str | Path) -> Path:
    """The folder, once every component it needs is present with safetensors weights; else a ModelLoadError naming what
    to stage."""
    root = Path(path)
    if not root.is_dir():
        raise ModelLoadError(f"model folder not found: {root} (stage the diffusers pipeline folder there)")
    if not (root / INDEX).is_file():
        raise ModelLoadError(f"{root} is not a diffusers pipeline folder: missing {root / INDEX}")
    try:
        index = json.loads((root / INDEX).read_text())
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{root / INDEX} is not valid JSON: {exc}") from exc
    named = {k for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and v[0] is not None}
    lacking = [c for c in REQUIRED if c not in named]
    if lacking:
        raise ModelLoadError(
            f"{root / INDEX} names no {', '.join(lacking)}: a text-to-image pipeline needs {', '.join(REQUIRED)}"
        )
    for component in sorted(named):
        folder = root / component
        if not folder.is_dir():
            raise ModelLoadError(f"pipeline component {component} is missing: stage its folder at {folder}")
        if component in WEIGHTS:
            _require_weights(folder, WEIGHTS[component])
    return root


def load_text_to_image(path: str | Path, device: str | torch.device | None = None) -> DiffusionPipeline:
    """Any diffusers text-to-image pipeline folder; safetensors only, no safety-checker download."""
    root = check_pipeline_folder(path)
    try:
        pipe = DiffusionPipeline.from_pretrained(
            root, local_files_only=True, use_safetensors=True, safety_checker=None, requires_safety_checker=False
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"cannot load pipeline from {root}: {str(exc).splitlines()[0]}") from exc
    if (root / LORA_FILE).is_file():  # an adapter erasure: fuse the LoRA into the UNet and drop its layers
        try:
            pipe.load_lora_weights(root, weight_name=LORA_FILE)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ModelLoadError(f"cannot load the adapter {root / LORA_FILE}: {str(exc).splitlines()[0]}") from exc
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device) if device is not None else pipe


def save_text_pipeline(base: Path, unet: torch.nn.Module, out: Path, lineage: dict) -> Path:
    """Copy `base` without its UNet, write the new UNet (or, for an adapter erasure of a base without one, the
    base's UNet and the adapter) and the lineage record; atomic (nothing partial is left)."""
    base = Path(base)
    adapter = (
        has_adapter(unet) and not (base / LORA_FILE).is_file()
    )  # on an adapter version, the next erasure's UNet starts fused
    with atomic_dir(Path(out)) as scratch:
        shutil.copytree(
            base,
            scratch,
            dirs_exist_ok=True,
            ignore=lambda folder, _: ["unet", LORA_FILE] if Path(folder) == base else [],
        )
        if adapter:
            shutil.copytree(base / "unet", scratch / "unet")
            tensors, config = adapter_state(unet)
            pipeline_class = getattr(diffusers, json.loads((base / INDEX).read_text())["_class_name"])
            pipeline_class.save_lora_weights(
                scratch, unet_lora_layers=tensors, unet_lora_adapter_metadata=config, weight_name=LORA_FILE
            )
            lineage = {
                **lineage,
                "adapter": {
                    "file": LORA_FILE,
                    "rank": config["r"],
                    "alpha": config["lora_alpha"],
                    "parameters": sum(t.numel() for t in tensors.values()),
                },
            }
        else:
            fused(unet).save_pretrained(scratch / "unet", safe_serialization=True)
        (scratch / META_FILE).write_text(json.dumps({"kind": "text-to-image", "lineage": lineage}, indent=2))
    return Path(out)
