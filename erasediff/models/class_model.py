"""Class-conditional diffusion models as local diffusers folders (safetensors only).

Layout (what `DDPMPipeline` uses): model_index.json, unet/, scheduler/, plus erasediff_model.json with
the class names. The UNet has `num_class_embeds = num_classes + 1`: the last embedding is the "null"
class used for classifier-free guidance.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import diffusers
from diffusers import DDPMScheduler, UNet2DModel

from erasediff.util.atomic import atomic_dir
from erasediff.util.errors import ModelLoadError

META_FILE = "erasediff_model.json"


UNET_WEIGHTS = "diffusion_pytorch_model.safetensors"


PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass
class ClassDiffusionModel:
    """A class-conditional UNet with its noise scheduler and class names."""

    unet: UNet2DModel
    scheduler: DDPMScheduler
    class_names: list[str]
    lineage: dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def null_class(self) -> int:
        return self.num_classes


def require_safetensors(folder: Path, weights_name: str) -> Path:
    """Path of a safetensors weight file, or a clear error saying what to stage or convert."""
    weights = folder / weights_name
    if weights.is_file():
        return weights
    if not folder.is_dir():
        raise ModelLoadError(f"model folder not found: {folder} (stage the model folder there)")
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"{folder / pickles[0]} is a pickle checkpoint, which is never unpickled; convert it to safetensors as "
            f"{weights}"
        )
    raise ModelLoadError(f"missing weight file {weights}: stage the model's safetensors weights there")


def load_class_model(path: str | Path) -> ClassDiffusionModel:
    """Load a class-conditional UNet2DModel + DDPMScheduler from a local diffusers folder."""
    root = Path(path)
    if not root.is_dir():
        raise ModelLoadError(f"model folder not found: {root}")
    require_safetensors(root / "unet", UNET_WEIGHTS)
    if not (root / "scheduler" / "scheduler_config.json").is_file():
        raise ModelLoadError(
            f"missing {root / 'scheduler' / 'scheduler_config.json'}: stage the model's scheduler config there"
        )
    try:
        unet = UNet2DModel.from_pretrained(root, subfolder="unet", use_safetensors=True, local_files_only=True)
        scheduler = DDPMScheduler.from_pretrained(root, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"cannot load diffusers model from {root}: {str(exc).splitlines()[0]}") from exc
    num_embeds = unet.config.num_class_embeds
    if not num_embeds or num_embeds < 2:
        raise ModelLoadError(f"{root / 'unet'} is not class-conditional (num_class_embeds={num_embeds})")
    meta = json.loads((root / META_FILE).read_text()) if (root / META_FILE).is_file() else {}
    class_names = meta.get("class_names") or [str(c) for c in range(num_embeds - 1)]
    if len(class_names) != num_embeds - 1:
        raise ModelLoadError(
            f"{root / META_FILE} names {len(class_names)} classes but the UNet has {num_embeds - 1} plus the null class"
        )
    return ClassDiffusionModel(unet.eval(), scheduler, class_names, meta.get("lineage", {}))


def save_class_model(model: ClassDiffusionModel, path: str | Path, replace: bool = False) -> Path:
    """Write the model as a new diffusers folder (atomic: a failure leaves nothing behind)."""
    target = Path(path)
    with atomic_dir(target, replace=replace) as scratch:
        model.unet.save_pretrained(scratch / "unet", safe_serialization=True)
        model.scheduler.save_pretrained(scratch / "scheduler")
        index = {
            "_class_name": "DDPMPipeline",
            "_diffusers_version": diffusers.__version__,
            "unet": ["diffusers", "UNet2DModel"],
            "scheduler": ["diffusers", type(model.scheduler).__name__],
        }
        (scratch / "model_index.json").write_text(json.dumps(index, indent=2))
        meta = {
            "kind": "class-conditional-ddpm",
            "class_names": model.class_names,
            "null_class": model.null_class,
            "lineage": model.lineage,
        }
        (scratch / META_FILE).write_text(json.dumps(meta, indent=2))
    return target
