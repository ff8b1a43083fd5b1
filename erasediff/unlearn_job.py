"""Unlearning on curated sets: what the pipeline's unlearn step runs, resumable through a stable checkpoint folder."""

import shutil
from pathlib import Path

from .atomic import atomic_dir
from .curation import load_curated_set
from .metrics_log import MetricsLog
from .model_io import load_class_model, save_class_model
from .plots import plot_unlearning_curves
from .request import ErasureRequest
from .unlearn import MetricsCallback, StepMetrics, unlearn

METRICS, CURVES, MODEL = "metrics.jsonl", "unlearning_curves.png", "model"


def unlearn_curated(
    request: ErasureRequest, base_dir: Path, sets_dir: Path, checkpoint_dir: Path, out: Path,
    lineage: dict, callback: MetricsCallback | None = None, progress: bool = True,
) -> Path:
    """Write `out/model` (diffusers folder), `out/metrics.jsonl` and `out/unlearning_curves.png`.

    Checkpoints and the metrics log live in `checkpoint_dir`, so a retried step resumes; they are
    removed once the model is saved, so a later run of the same request starts afresh.
    """
    model = load_class_model(base_dir)
    channels = model.unet.config.in_channels
    forget, retain = (load_curated_set(sets_dir, name, channels) for name in ("forget", "retain"))
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    log = MetricsLog(checkpoint_dir / METRICS)

    def record(metrics: StepMetrics) -> None:
        log(metrics)
        if callback is not None:
            callback(metrics)

    result = unlearn(model, forget, retain, request.target.classes, request.unlearning, checkpoint_dir,
                     request.checkpoint_every, record, progress=progress)
    result.lineage.update(lineage)
    with atomic_dir(out) as scratch:
        save_class_model(result, scratch / MODEL)
        shutil.copyfile(log.path, scratch / METRICS)
        plot_unlearning_curves(log.rows(), scratch / CURVES)
    shutil.rmtree(checkpoint_dir)
    return out
