"""The gold standard: the base model's own recipe, retrained from scratch on the retain set only.

It never saw the erased class, so what an attack achieves on it is learning from the attacker's images, not
leftover memory: the floor every attack success is read against. Retraining is minutes on 2 cores for the
embedded models; the result is cached under a key made of the recipe and the retain set's content, and the
package ships the golds of the default requests (digits: forget 3; tiny text model: forget "seven").

For the tiny text-to-image model only the UNet is retrained: the base's VAE and text encoder stay frozen, as
Stable Diffusion retrained without a concept would keep its pretrained VAE and CLIP.
"""

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import LabeledImages
from erasediff.defaults.digits_models import SPLIT_SEED, BaseTrainConfig, train_ddpm
from erasediff.models.class_model import ClassDiffusionModel, load_class_model, save_class_model
from erasediff.util.cache import PACKAGED_ROOT, default_cache_root
from erasediff.util.errors import ErasediffError
from erasediff.util.hashing import config_hash, folder_hash
from erasediff.util.locks import file_lock


def _content_hash(retain: LabeledImages) -> str:
    return hashlib.sha256(retain.images.numpy().tobytes() + retain.labels.numpy().tobytes()).hexdigest()[:12]


def gold_key(retain: LabeledImages, config: BaseTrainConfig) -> str:
    return f"gold-digits-{config_hash(config.model_dump())}-{_content_hash(retain)}"


def _cached(name: str, root: Path | None, build: Callable[[Path], None], what: str) -> Path:
    """The folder `name`, packaged or cached, else built once by `build(target)` under a lock (two requests needing
    the same gold train it once)."""
    for folder in (PACKAGED_ROOT / name, (root or default_cache_root()) / name):
        if folder.is_dir():
            return folder
    target = (root or default_cache_root()) / name
    with file_lock(target.with_suffix(".lock"), f"the {what} training", wait_s=1800):
        if not target.is_dir():
            tqdm.write(f"training the {what} once; cached at {target}")
            build(target)
    return target


def retrained_gold(
    retain: LabeledImages,
    forget_classes: list[int],
    config: BaseTrainConfig | None = None,
    root: Path | None = None,
    progress: bool = True,
) -> ClassDiffusionModel:
    """The recipe of `config` (default: the embedded base's) trained on `retain` alone; packaged, cached, or trained
    now."""
    config = config or BaseTrainConfig()

    def build(target: Path) -> None:
        model = train_ddpm(retain.images, retain.labels, config, progress=progress)
        model.lineage.update(
            {
                "base": "digits-ddpm retrained without the erased classes",
                "never_saw_classes": forget_classes,
                SPLIT_SEED: config.seed,
            }
        )
        save_class_model(model, target)

    return load_class_model(
        _cached(gold_key(retain, config), root, build, f"retrained gold standard (no class {forget_classes})")
    )


def _text_digits_recipe(base: Path):
    """The recipe of an embedded text-digits pipeline: from the training record beside it, or, for a copy (a pipeline's
    artifact store hands steps a copy), from its content matching the packaged default's."""
    from erasediff.defaults.text_digits import PIPELINE_DIR, RECORD, TextDigitsConfig, text_digits_default

    record = base.parent / RECORD
    if base.name == PIPELINE_DIR and record.is_file():
        return TextDigitsConfig(**json.loads(record.read_text())["config"])
    if base.is_dir() and folder_hash(base) == folder_hash(text_digits_default(progress=False)):
        return TextDigitsConfig()
    raise ErasediffError(
        f"a retrained text gold standard exists for the embedded text-digits model only, not {base}: "
        "set evaluation.text_to_image.attacks.gold to a local pipeline folder trained without the concept"
    )


def retrained_text_gold(base: Path, forget_classes: list[int], root: Path | None = None, progress: bool = True) -> Path:
    """The embedded tiny text-to-image model's UNet retrained on captioned digits without `forget_classes`; a pipeline
    folder."""
    from erasediff.defaults.text_digits import build_pipeline, train_unet
    from erasediff.models.text_encoding import encode_images
    from erasediff.models.text_pipeline import load_text_to_image, save_text_pipeline

    config = _text_digits_recipe(Path(base))
    train, _ = load_digits_split(seed=config.seed)
    retain = train.where(~torch.isin(train.labels, torch.tensor(forget_classes)))
    name = f"gold-text-digits-{config_hash(config.model_dump())}-{_content_hash(retain)}"

    def build(target: Path) -> None:
        pipe = load_text_to_image(base)
        latents = encode_images(pipe, retain.images.repeat(1, 3, 1, 1), batch_size=256, progress=False)
        pipe.unet = build_pipeline(config).unet  # the recipe's own initialisation, never trained
        train_unet(pipe, latents, retain.labels, config, progress, train_text_encoder=False)
        save_text_pipeline(
            base,
            pipe.unet,
            target,
            {
                "base": "text-digits UNet retrained without the erased classes (VAE and text encoder "
                "frozen from the base)",
                "never_saw_classes": forget_classes,
                "config": config.model_dump(),
            },
        )

    return _cached(name, root, build, f"retrained text gold standard (no class {forget_classes})")
