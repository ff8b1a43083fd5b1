"""The gold standard: the base model's own recipe, retrained from scratch on the retain set only.

It never saw the erased class, so what an attack achieves on it is learning from the attacker's images, not
leftover memory: the floor every attack success is read against. Retraining is minutes on 2 cores for the
embedded digits model; the result is cached under a key made of the recipe and the retain set's content, and
the package ships the gold for the default request (forget 3).
"""

import hashlib
from pathlib import Path

from tqdm.auto import tqdm

from erasediff.data.image_sets import LabeledImages
from erasediff.defaults.digits_models import SPLIT_SEED, BaseTrainConfig, train_ddpm
from erasediff.models.class_model import ClassDiffusionModel, load_class_model, save_class_model
from erasediff.util.cache import PACKAGED_ROOT, default_cache_root
from erasediff.util.hashing import config_hash
from erasediff.util.locks import file_lock


def gold_key(retain: LabeledImages, config: BaseTrainConfig) -> str:
    content = hashlib.sha256(retain.images.numpy().tobytes() + retain.labels.numpy().tobytes()).hexdigest()
    return f"gold-digits-{config_hash(config.model_dump())}-{content[:12]}"


def retrained_gold(retain: LabeledImages, forget_classes: list[int], config: BaseTrainConfig | None = None, root: Path | None = None,
                   progress: bool = True) -> ClassDiffusionModel:
    """The recipe of `config` (default: the embedded base's) trained on `retain` alone; packaged, cached, or trained now."""
    config = config or BaseTrainConfig()
    name = gold_key(retain, config)
    for folder in (PACKAGED_ROOT / name, (root or default_cache_root()) / name):
        if folder.is_dir():
            return load_class_model(folder)
    target = (root or default_cache_root()) / name
    with file_lock(target.with_suffix(".lock"), "the gold-standard training", wait_s=1800):  # two requests needing the same gold train it once
        if not target.is_dir():
            tqdm.write(f"training the retrained gold standard (no class {forget_classes}) once; cached at {target}")
            model = train_ddpm(retain.images, retain.labels, config, progress=progress)
            model.lineage.update({"base": "digits-ddpm retrained without the erased classes", "never_saw_classes": forget_classes, SPLIT_SEED: config.seed})
            save_class_model(model, target)
    return load_class_model(target)
