"""Unlearning a class-conditional model: check the sets against the model, then run the loop with
class labels as conditions and substitute classes for `remap`.
"""

from pathlib import Path

import torch

from erasediff.data.image_sets import LabeledImages, check_forget_classes
from erasediff.method.loop import MetricsCallback, unlearn_unet
from erasediff.method.losses import class_condition
from erasediff.method.robust.forget_row import check_rows, null_forgotten_rows
from erasediff.method.runtime.probe import ProbeFactory
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.class_model import ClassDiffusionModel
from erasediff.util.errors import DataError


def check_request(
    model: ClassDiffusionModel, forget: LabeledImages, retain: LabeledImages, forget_classes: list[int]
) -> torch.Tensor:
    """Validate the sets against the model; return the substitute classes allowed for `remap`."""
    check_forget_classes(forget_classes, model.num_classes)
    if len(forget) == 0:
        raise DataError("forget set is empty")
    if len(retain) == 0:
        raise DataError("retain set is empty")
    if torch.isin(retain.labels, torch.tensor(forget_classes)).any():
        raise DataError("retain set contains images labelled with a forgotten class")
    return torch.tensor([c for c in range(model.num_classes) if c not in forget_classes])


def unlearn_classes(
    model: ClassDiffusionModel,
    forget: LabeledImages,
    retain: LabeledImages,
    forget_classes: list[int],
    settings: UnlearnSettings,
    checkpoint_dir: Path | None = None,
    checkpoint_every: int = 0,
    callback: MetricsCallback | None = None,
    stop_after: int | None = None,
    progress: bool = True,
    probe: ProbeFactory | None = None,
) -> ClassDiffusionModel:
    """Return an unlearned copy of a class-conditional `model` (the input model is not modified).

    With `checkpoint_dir`, resumes from the newest checkpoint there. `stop_after` ends the loop early
    (after checkpointing), to simulate an interrupted run. `probe` replaces the held-out loss probe.
    """
    substitutes = check_request(model, forget, retain, forget_classes)
    if settings.forget_row == "null":
        check_rows(model.unet, model.null_class)  # before the erasure runs, not after
    unet = unlearn_unet(
        model.unet,
        model.scheduler,
        class_condition,
        forget,
        retain,
        substitutes,
        settings,
        {"forget_classes": forget_classes},
        null_id=model.null_class,
        probe=probe,
        checkpoint_dir=checkpoint_dir,
        checkpoint_every=checkpoint_every,
        callback=callback,
        stop_after=stop_after,
        progress=progress,
    )
    if (
        settings.forget_row == "null"
    ):  # forget_row null (robust/forget_row.py): the forgotten labels point at the null row
        null_forgotten_rows(unet, forget_classes, model.null_class)
    lineage = {**model.lineage, "forget_classes": forget_classes, "unlearning": settings.model_dump(by_alias=True)}
    return ClassDiffusionModel(unet, model.scheduler, list(model.class_names), lineage)
