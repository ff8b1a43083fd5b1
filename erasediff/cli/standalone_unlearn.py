"""`erasediff unlearn`: one standalone job on a class-conditional model: load, check, unlearn, save, compare
before/after, prove the base untouched (no pipeline, no registry).
"""

import json
from dataclasses import asdict
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.defaults.digits_models import digits_split_seed
from erasediff.defaults.resolve import model_path, resolve_classifier, resolve_model
from erasediff.evaluation.class_accuracy import before_after_table, sample_per_class, score_samples
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.method.runtime.metrics_log import MetricsLog
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.class_model import save_class_model
from erasediff.reporting.plots import plot_unlearning_curves, save_before_after_grid
from erasediff.util.config import Strict
from erasediff.util.errors import DataError, ErasediffError
from erasediff.util.hashing import folder_hash


class UnlearnRunConfig(Strict):
    """An `erasediff unlearn` run on a class-conditional model."""

    model: str = Field("digits", description="local diffusers folder, or 'digits' for the embedded default")
    classifier: str = Field("digits", description="local classifier folder, or 'digits'")
    data: Literal["digits"] = "digits"
    forget_classes: list[int] = Field(min_length=1)
    output_dir: Path
    checkpoint_every: int = Field(0, ge=0, description="0 = no checkpoints")
    unlearning: UnlearnSettings = Field(default_factory=UnlearnSettings)
    evaluation: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="after")
    def _distinct_classes(self) -> "UnlearnRunConfig":
        if len(set(self.forget_classes)) != len(self.forget_classes):
            raise ValueError(f"forget_classes lists a class twice: {self.forget_classes}")
        return self


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

    train, _ = load_digits_split(model.unet.config.sample_size, seed=digits_split_seed(model.lineage))
    if tuple(train.images.shape[1:]) != (
        model.unet.config.in_channels,
        model.unet.config.sample_size,
        model.unet.config.sample_size,
    ):
        raise DataError(
            f"data '{config.data}' has images {tuple(train.images.shape[1:])} that the model at {base_dir} cannot take"
        )
    forget, retain = split_forget_retain(train, config.forget_classes, model.num_classes)
    print(f"forget set: {len(forget)} images of classes {config.forget_classes}; retain set: {len(retain)} images")

    out.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(out / "metrics.jsonl")
    result = unlearn_classes(
        model,
        forget,
        retain,
        config.forget_classes,
        config.unlearning,
        out / "checkpoints",
        config.checkpoint_every,
        log,
        progress=progress,
    )
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
        "base_model": str(base_dir),
        "base_model_hash": base_hash,
        "unlearned_model": str(model_out),
        "evaluation": config.evaluation.model_dump(),
        "before": {c: asdict(s) for c, s in before.items()},
        "after": {c: asdict(s) for c, s in after.items()},
    }
    (out / "evaluation.json").write_text(json.dumps(record, indent=2))
    print(f"unlearned model: {model_out}")
    return record
