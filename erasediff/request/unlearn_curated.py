"""Unlearning on curated sets: what the pipeline's unlearn step runs, resumable through a stable checkpoint folder."""

import json
import shutil
import sys
from pathlib import Path

import torch
from accelerate import PartialState

from erasediff.curation.sets import SETS, load_curated_set, read_images, read_manifest
from erasediff.data.image_sets import CaptionedImages
from erasediff.method.loop import MetricsCallback, StepMetrics
from erasediff.method.runtime.checkpoint import checkpoint_step, latest_checkpoint
from erasediff.method.runtime.metrics_log import MetricsLog
from erasediff.method.runtime.processes import launch, run_rank
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.targets.concept import unlearn_concept
from erasediff.models.class_model import load_class_model, save_class_model
from erasediff.models.text_pipeline import load_text_to_image, save_text_pipeline
from erasediff.reporting.plots import plot_unlearning_curves
from erasediff.request.schema import ErasureRequest
from erasediff.util.atomic import atomic_dir

METRICS, CURVES, MODEL, RANKS = "metrics.jsonl", "unlearning_curves.png", "model", "ranks.json"
WORKER = "erasediff.request.unlearn_curated"  # what each data-parallel rank runs: python -m WORKER SPEC.json


def load_captioned_set(root: Path, name: str) -> CaptionedImages:
    part = read_manifest(root, name)
    return CaptionedImages(read_images(root, name, list(part["file"]), 3), list(part["caption"]))


def unlearn_into(
    req: ErasureRequest,
    base_dir: str | Path,
    sets_dir: str | Path,
    checkpoint_dir: str | Path,
    model_out: str | Path,
    lineage: dict,
    progress: bool = True,
    callback: MetricsCallback | None = None,
    rank_callback: MetricsCallback | None = None,
) -> torch.nn.Module:
    """Unlearn on one rank and return its UNet; rank 0 saves the diffusers folder to `model_out`, appends every
    step to `checkpoint_dir/metrics.jsonl` and calls `callback`. Every rank calls `rank_callback`.

    Paths may be strings: each data-parallel worker runs this from a JSON spec (see `_rank_job`).
    """
    base_dir, sets_dir, checkpoint_dir, model_out = (Path(p) for p in (base_dir, sets_dir, checkpoint_dir, model_out))
    log = MetricsLog(checkpoint_dir / METRICS)

    def record(metrics: StepMetrics) -> None:
        if rank_callback is not None:
            rank_callback(metrics)
        if PartialState().is_main_process:
            log(metrics)
            if callback is not None:
                callback(metrics)

    resume = {
        "checkpoint_dir": checkpoint_dir,
        "checkpoint_every": req.checkpoint_every,
        "callback": record,
        "progress": progress,
    }
    if req.target.kind == "class":
        model = load_class_model(base_dir)
        forget, retain = (load_curated_set(sets_dir, name, model.unet.config.in_channels) for name in SETS)
        result = unlearn_classes(model, forget, retain, req.target.classes, req.unlearning, **resume)
        result.lineage.update(lineage)
        if PartialState().is_main_process:
            save_class_model(result, model_out)
        return result.unet
    pipe = load_text_to_image(base_dir)
    forget, retain = (load_captioned_set(sets_dir, name) for name in SETS)
    unet = unlearn_concept(pipe, forget, retain, req.target.anchors, req.unlearning, **resume)
    if PartialState().is_main_process:
        concept = {
            "concept": req.target.concept,
            "anchors": req.target.anchors,
            "unlearning": req.unlearning.model_dump(by_alias=True),
        }
        save_text_pipeline(base_dir, unet, model_out, {**lineage, **concept})
    return unet


def replay_history(log: MetricsLog, checkpoint_dir: Path, callback: MetricsCallback | None) -> None:
    """A retry resumes from the newest checkpoint: hand `callback` the steps an earlier attempt logged up to it, so the
    run's metric series holds the whole unlearning history, not only the steps after the resume."""
    if callback is None or (found := latest_checkpoint(checkpoint_dir)) is None:
        return
    resumed_at = checkpoint_step(found)
    for row in log.rows():
        if row["step"] <= resumed_at:
            callback(StepMetrics.from_row(row))


def unlearn_curated(
    request: ErasureRequest,
    base_dir: Path,
    sets_dir: Path,
    checkpoint_dir: Path,
    out: Path,
    lineage: dict,
    callback: MetricsCallback | None = None,
    progress: bool = True,
) -> Path:
    """Write `out/model` (diffusers folder: class model, or a whole text-to-image pipeline), `out/metrics.jsonl`
    and `out/unlearning_curves.png`.

    With `unlearning.processes` > 1, also `out/ranks.json`: each rank's lambda_t series and weights hash.
    Checkpoints and the metrics log live in `checkpoint_dir`, so a retried step resumes; they are
    removed once the model is saved, so a later run of the same request starts afresh. Data-parallel
    runs report their steps to `callback` once all ranks are done.
    """
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    with atomic_dir(out) as scratch:
        job = {
            "base_dir": str(base_dir),
            "sets_dir": str(sets_dir),
            "checkpoint_dir": str(checkpoint_dir),
            "model_out": str(scratch / MODEL),
            "lineage": lineage,
            "progress": progress,
        }
        settings, log = request.unlearning, MetricsLog(checkpoint_dir / METRICS)
        if settings.processes > 1:
            records = launch(
                {"request": request.as_params(), **job},
                settings.processes,
                settings.mixed_precision,
                checkpoint_dir,
                WORKER,
            )
            (scratch / RANKS).write_text(json.dumps(records, indent=1))
            for row in log.rows() if callback is not None else []:
                callback(StepMetrics.from_row(row))
        else:
            replay_history(log, checkpoint_dir, callback)
            unlearn_into(request, **job, callback=callback)
        (scratch / METRICS).write_text(
            "".join(json.dumps(row) + "\n" for row in log.rows())
        )  # each step once, the last attempt's
        plot_unlearning_curves(log.rows(), scratch / CURVES)
    shutil.rmtree(checkpoint_dir)
    return out


def _rank_job(request: dict, **job) -> torch.nn.Module:
    """A data-parallel rank's job: the request arrives as JSON across the process boundary and is validated here."""
    return unlearn_into(ErasureRequest.model_validate(request), **job)


if __name__ == "__main__":
    sys.exit(run_rank(_rank_job, sys.argv[1:]))
