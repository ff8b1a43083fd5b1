"""`train-base`: the embedded default models, trained here on CPU from scikit-learn's digits.

A class-conditional DDPM (condition dropout for classifier-free guidance, EMA weights) and the
evaluator classifier. Both are saved in diffusers / safetensors form under `<root>/digits-<hash>/`,
where the hash keys the training config, so later runs reuse them. The package ships one such
folder (`erasediff/assets/`), produced by this module with the recorded config and seed.
"""

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler, UNet2DModel
from pydantic import Field
from tqdm.auto import tqdm

from erasediff.data.digits import DIGIT_NAMES, DIGITS_RESOLUTION, NUM_DIGIT_CLASSES, load_digits_split
from erasediff.defaults.training import train_step
from erasediff.evaluation.class_accuracy import class_scores, mean_accuracy, quality_table
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.models.class_model import ClassDiffusionModel, load_class_model, save_class_model
from erasediff.models.classifier import ClassifierConfig, ImageClassifier, accuracy, train_classifier
from erasediff.util.atomic import atomic_dir
from erasediff.util.cache import PACKAGED_ROOT, default_cache_root
from erasediff.util.config import Strict
from erasediff.util.errors import DataError
from erasediff.util.hashing import config_hash

log = logging.getLogger(__name__)

MODEL_DIR, CLASSIFIER_DIR, RECORD = "ddpm", "classifier", "train_record.json"
SPLIT_SEED = "digits_split_seed"  # lineage key: the seed of the digits train/held-out split the model was trained on


class BaseTrainConfig(Strict):
    seed: int = 0
    resolution: int = Field(DIGITS_RESOLUTION, ge=16)
    block_out_channels: list[int] = [16, 32, 32]
    layers_per_block: int = 1
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    steps: int = 1000
    batch_size: int = 64
    lr: float = 1e-3
    ema_decay: float = 0.995
    cond_dropout: float = Field(0.1, ge=0, lt=1)
    classifier_epochs: int = 15
    quality: EvalSettings = EvalSettings(samples_per_class=50, steps=25)


def digits_split_seed(lineage: dict) -> int:
    """The seed of the digits train/held-out split a model was trained on, from its lineage (the default training
    config, which the packaged model was trained with, uses seed 0). Curation and evaluation must use the same split:
    another one would evaluate on training images and curate held-out ones. An unknown split is refused."""
    if SPLIT_SEED in lineage:
        return int(lineage[SPLIT_SEED])
    if lineage.get("train_config_hash") == config_hash(BaseTrainConfig().model_dump()):
        return BaseTrainConfig().seed
    raise DataError(
        "the model's lineage does not record which digits train/held-out split it was trained on, so 'digits' data "
        f"cannot be curated or evaluated for it: train it with `erasediff train-base` (which records {SPLIT_SEED}), "
        "or give labelled folders"
    )


def build_unet(config: BaseTrainConfig) -> UNet2DModel:
    n = len(config.block_out_channels)
    return UNet2DModel(
        sample_size=config.resolution,
        in_channels=1,
        out_channels=1,
        block_out_channels=tuple(config.block_out_channels),
        layers_per_block=config.layers_per_block,
        down_block_types=("DownBlock2D",) * n,
        up_block_types=("UpBlock2D",) * n,
        norm_num_groups=8,
        num_class_embeds=NUM_DIGIT_CLASSES + 1,
    )


def train_ddpm(
    train_images: torch.Tensor,
    train_labels: torch.Tensor,
    config: BaseTrainConfig,
    progress: bool = True,
    stop_after: int | None = None,
) -> ClassDiffusionModel:
    """Plain epsilon-prediction DDPM training; labels are replaced by the null class with p=cond_dropout.
    `stop_after` keeps the EMA weights at that step of the recipe (a run stopped half-way, for the gate-power
    benchmark)."""
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    unet = build_unet(config).train()
    scheduler = DDPMScheduler(num_train_timesteps=config.num_train_timesteps, beta_schedule=config.beta_schedule)
    ema = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    optimizer = torch.optim.AdamW(unet.parameters(), lr=config.lr, weight_decay=0.0)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.steps, pct_start=0.05
    )
    for _ in tqdm(range(stop_after or config.steps), desc="DDPM training", disable=not progress):
        idx = torch.randint(len(train_images), (config.batch_size,), generator=generator)
        x0, labels = train_images[idx], train_labels[idx].clone()
        labels[torch.rand(config.batch_size, generator=generator) < config.cond_dropout] = NUM_DIGIT_CLASSES
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, config.num_train_timesteps, (config.batch_size,), generator=generator)
        loss = F.mse_loss(unet(scheduler.add_noise(x0, noise, t), t, class_labels=labels).sample, noise)
        train_step(loss, unet, optimizer, lr_schedule, ema, config.ema_decay)
    unet.load_state_dict(ema)
    lineage = {"base": "digits-ddpm", "train_config_hash": config_hash(config.model_dump()), SPLIT_SEED: config.seed}
    return ClassDiffusionModel(unet.eval(), scheduler, list(DIGIT_NAMES), lineage)


def find_trained(config: BaseTrainConfig, roots: list[Path]) -> Path | None:
    name = f"digits-{config_hash(config.model_dump())}"
    for root in roots:
        if (root / name / RECORD).is_file():
            return root / name
    return None


def train_base(config: BaseTrainConfig, root: Path | None = None, force: bool = False, progress: bool = True) -> Path:
    """Train (or reuse) the digits DDPM and classifier; return their folder. Prints the quality table."""
    root = root or default_cache_root()
    if not force and (found := find_trained(config, [PACKAGED_ROOT, root])) is not None:
        return found
    train, heldout = load_digits_split(config.resolution, seed=config.seed)
    started = time.time()
    classifier = train_classifier(
        train, ClassifierConfig(resolution=config.resolution), config.classifier_epochs, config.seed, progress
    )
    classifier_acc = accuracy(classifier, heldout)
    model = train_ddpm(train.images, train.labels, config, progress)
    train_seconds = time.time() - started
    scores = class_scores(model, classifier, config.quality, progress)
    log.info(
        f"trained in {train_seconds:.0f} s on {torch.get_num_threads()} threads; evaluator held-out accuracy: "
        f"{classifier_acc:.1%}"
    )
    log.info(
        f"base DDPM: samples per class conditioned on it (guidance {config.quality.guidance}), classified by the "
        "evaluator"
    )
    log.info(quality_table(scores, model.class_names))
    record = {
        "config": config.model_dump(),
        "config_hash": config_hash(config.model_dump()),
        "seed": config.seed,
        "train_seconds": round(train_seconds, 1),
        "classifier_heldout_accuracy": classifier_acc,
        "class_accuracy": {c: s.accuracy for c, s in scores.items()},
        "mean_class_accuracy": mean_accuracy(scores, list(scores)),
        "torch_threads": torch.get_num_threads(),
    }
    target = root / f"digits-{record['config_hash']}"
    with atomic_dir(target, replace=force) as scratch:
        save_class_model(model, scratch / MODEL_DIR)
        classifier.save_pretrained(scratch / CLASSIFIER_DIR)
        (scratch / RECORD).write_text(json.dumps(record, indent=2))
    return target


def digits_default(progress: bool = True) -> tuple[ClassDiffusionModel, ImageClassifier, Path]:
    """The embedded default (packaged, cached, or trained now) as (model, classifier, folder)."""
    folder = train_base(BaseTrainConfig(), progress=progress)
    return load_class_model(folder / MODEL_DIR), ImageClassifier.from_pretrained(folder / CLASSIFIER_DIR), folder
