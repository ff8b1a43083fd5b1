"""Unlearning on curated sets: what the pipeline's unlearn step runs, resumable through a stable checkpoint folder."""

import shutil
from pathlib import Path

from .atomic import atomic_dir
from .curation import SETS, load_curated_set, read_images, read_manifest
from .metrics_log import MetricsLog
from .model_io import load_class_model, save_class_model
from .plots import plot_unlearning_curves
from .request import ErasureRequest
from .text_model import load_text_to_image, save_text_pipeline
from .unlearn import MetricsCallback, StepMetrics, unlearn
from .unlearn_text import CaptionedImages, unlearn_text

METRICS, CURVES, MODEL = "metrics.jsonl", "unlearning_curves.png", "model"


def load_captioned_set(root: Path, name: str) -> CaptionedImages:
    part = read_manifest(root, name)
    return CaptionedImages(read_images(root, name, list(part["file"]), 3), list(part["caption"]))


def unlearn_curated(
    request: ErasureRequest, base_dir: Path, sets_dir: Path, checkpoint_dir: Path, out: Path,
    lineage: dict, callback: MetricsCallback | None = None, progress: bool = True,
) -> Path:
    """Write `out/model` (diffusers folder: class model, or a whole text-to-image pipeline), `out/metrics.jsonl`
    and `out/unlearning_curves.png`.

    Checkpoints and the metrics log live in `checkpoint_dir`, so a retried step resumes; they are
    removed once the model is saved, so a later run of the same request starts afresh.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(checkpoint_dir / METRICS)

    def record(metrics: StepMetrics) -> None:
        log(metrics)
        if callback is not None:
            callback(metrics)

    resume = {"checkpoint_dir": checkpoint_dir, "checkpoint_every": request.checkpoint_every, "callback": record, "progress": progress}
    with atomic_dir(out) as scratch:
        if request.target.kind == "class":
            model = load_class_model(base_dir)
            forget, retain = (load_curated_set(sets_dir, name, model.unet.config.in_channels) for name in SETS)
            result = unlearn(model, forget, retain, request.target.classes, request.unlearning, **resume)
            result.lineage.update(lineage)
            save_class_model(result, scratch / MODEL)
        else:
            pipe = load_text_to_image(base_dir)
            forget, retain = (load_captioned_set(sets_dir, name) for name in SETS)
            unet = unlearn_text(pipe, forget, retain, request.target.anchors, request.unlearning, **resume)
            concept = {"concept": request.target.concept, "anchors": request.target.anchors, "unlearning": request.unlearning.model_dump(by_alias=True)}
            save_text_pipeline(base_dir, unet, scratch / MODEL, {**lineage, **concept})
        shutil.copyfile(log.path, scratch / METRICS)
        plot_unlearning_curves(log.rows(), scratch / CURVES)
    shutil.rmtree(checkpoint_dir)
    return out
