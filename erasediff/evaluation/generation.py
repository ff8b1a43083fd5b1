"""Images for evaluation, written as PNG files with a manifest.

Original and unlearned models are sampled with the same classes, seed, sampler, steps and guidance,
so image i of one set and image i of the other start from identical noise. Each manifest row says
what produced the file: condition, seed and index, sampler settings and the model folder's hash.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from erasediff.data.images import save_png
from erasediff.data.prompts import PromptRow
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.models.class_model import ClassDiffusionModel
from erasediff.models.sampling import sample_classes
from erasediff.util.atomic import atomic_dir

MANIFEST = "manifest.jsonl"


@dataclass
class GeneratedSet:
    folder: Path
    images: torch.Tensor  # (N, C, H, W) float samples in [-1, 1]; the PNG files hold their images.to_uint8 quantisation
    labels: torch.Tensor | None  # class sets; None for prompt sets
    rows: list[dict]

    def paths(self) -> list[Path]:
        return [self.folder / r["file"] for r in self.rows]


def generate_class_set(
    model: ClassDiffusionModel,
    model_hash: str,
    classes: list[int],
    settings: EvalSettings,
    out: Path,
    progress: bool = True,
) -> GeneratedSet:
    labels = torch.tensor(classes).repeat_interleave(settings.samples_per_class)
    images = sample_classes(
        model.unet,
        model.scheduler,
        labels,
        model.null_class,
        settings.diffusers_scale(),
        settings.steps,
        settings.sampler,
        settings.seed,
        settings.batch_size,
        progress,
    )
    rows = [
        {
            "file": f"class-{label:02d}/{index:06d}.png",
            "class": label,
            "class_name": model.class_names[label],
            "seed": settings.seed,
            "index": index,
            "sampler": settings.sampler,
            "steps": settings.steps,
            "guidance": settings.guidance,
            "guidance_scale_diffusers": settings.diffusers_scale(),
            "model_sha256": model_hash,
        }
        for index, label in enumerate(labels.tolist())
    ]
    return _write_set(images, labels, rows, out)


def generate_prompt_set(
    pipe,
    model_hash: str,
    prompts: list[PromptRow],
    steps: int,
    default_guidance: float,
    out: Path,
    batch_size: int = 8,
    size: int | None = None,
    progress: bool = True,
) -> GeneratedSet:
    """One image per prompt row from its own seed and guidance (I2P rows carry both)."""
    from erasediff.models.sampling import sample_prompts

    images = sample_prompts(pipe, prompts, steps, default_guidance, batch_size, size, progress)
    rows = [
        {
            "file": f"prompt-{index:06d}.png",
            "prompt": r.prompt,
            "seed": r.seed,
            "index": index,
            "steps": steps,
            "guidance": r.guidance if r.guidance is not None else default_guidance,
            "model_sha256": model_hash,
        }
        for index, r in enumerate(prompts)
    ]
    return _write_set(images, None, rows, out)


def _write_set(images: torch.Tensor, labels: torch.Tensor | None, rows: list[dict], out: Path) -> GeneratedSet:
    """PNG files and manifest.jsonl, renamed into place only when all are written."""
    with atomic_dir(out, replace=True) as scratch:
        for image, row in zip(images, rows):
            (scratch / row["file"]).parent.mkdir(parents=True, exist_ok=True)
            save_png(image, scratch / row["file"])
        (scratch / MANIFEST).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return GeneratedSet(Path(out), images, labels, rows)
