"""One `erasediff unlearn` job: load, check, unlearn, save, compare before/after, prove the base untouched."""

import json
from dataclasses import asdict
from pathlib import Path

from .class_accuracy import before_after_table, sample_per_class, score_samples
from .config import UnlearnRunConfig
from .datasets import split_forget_retain
from .digits import load_digits_split
from .errors import DataError, ErasediffError
from .hashing import folder_hash
from .metrics_log import MetricsLog
from .model_io import save_class_model
from .plots import plot_unlearning_curves, save_before_after_grid
from .resolve import model_path, resolve_classifier, resolve_model
from .unlearn import unlearn


def run_unlearn(config: UnlearnRunConfig, progress: bool = True) -> dict:
    """Returns the evaluation record also written to `<output_dir>/evaluation.json`."""
    out = Path(config.output_dir)
    model_out = out / "model"
    if model_out.exists():
        raise ErasediffError(f"{model_out} already holds an unlearned model; choose a new output_dir")
    base_dir = model_path(config.model)
    model = resolve_model(config.model)
    base_hash = folder_hash(base_dir)
    classifier, _ = resolve_classifier(config.classifier)

    train, _ = load_digits_split(model.unet.config.sample_size)
    if tuple(train.images.shape[1:]) != (model.unet.config.in_channels, model.unet.config.sample_size, model.unet.config.sample_size):
        raise DataError(f"data '{config.data}' has images {tuple(train.images.shape[1:])} that the model at {base_dir} cannot take")
    forget, retain = split_forget_retain(train, config.forget_classes, model.num_classes)
    print(f"forget set: {len(forget)} images of classes {config.forget_classes}; retain set: {len(retain)} images")

    out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out / "metrics.jsonl")
    result = unlearn(model, forget, retain, config.forget_classes, config.unlearning, out / "checkpoints", config.checkpoint_every, log, progress=progress)
    result.lineage.update({"base_model": str(base_dir), "base_model_hash": base_hash})
    save_class_model(result, model_out)
    plot_unlearning_curves(log.rows(), out / "unlearning_curves.png")

    before_images, labels = sample_per_class(model, config.evaluation, progress)
    after_images, _ = sample_per_class(result, config.evaluation, progress)
    before, after = score_samples(classifier, before_images, labels), score_samples(classifier, after_images, labels)
    save_before_after_grid(before_images, after_images, labels, 8, out / "samples_before_after.png")
    print(before_after_table(before, after, model.class_names, config.forget_classes))

    if folder_hash(base_dir) != base_hash:
        raise ErasediffError(f"base model folder {base_dir} changed during the run")
    record = {
        "forget_classes": config.forget_classes,
        "base_model": str(base_dir), "base_model_hash": base_hash, "unlearned_model": str(model_out),
        "evaluation": config.evaluation.model_dump(),
        "before": {c: asdict(s) for c, s in before.items()}, "after": {c: asdict(s) for c, s in after.items()},
    }
    (out / "evaluation.json").write_text(json.dumps(record, indent=2))
    print(f"unlearned model: {model_out}")
    return record
