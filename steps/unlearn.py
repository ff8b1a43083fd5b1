"""Step: EraseDiff on the curated sets; per-step metrics as MLflow series; resumes from checkpoints when retried."""

import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from zenml import get_step_context, step

from erasediff.hashing import config_hash
from erasediff.request import ErasureRequest
from erasediff.unlearn_job import CURVES, RANKS, unlearn_curated
from steps.tracking import MetricSeries, work_folder


@step
def unlearn_model(request: dict, base_model: Path, base_model_sha256: str, curated_sets: Path, curation_summary: dict) -> Annotated[Path, "unlearned_model"]:
    req = ErasureRequest.model_validate(request)
    target = {"forget_classes": req.target.classes} if req.target.kind == "class" else {"concept": req.target.concept, "anchors": req.target.anchors}
    mlflow.log_params({"request_id": req.request.id, **target, "base_model": req.base_model,
                       **{f"unlearning.{k}": v for k, v in req.unlearning.model_dump(by_alias=True).items()}})
    # Same request, settings and data -> same folder, so a retry resumes where the failed attempt stopped.
    key = config_hash({"unlearning": req.unlearning.model_dump(), "base": base_model_sha256, "sets": curation_summary})
    lineage = {"request_id": req.request.id, "base_model": req.base_model, "base_model_sha256": base_model_sha256, **curation_summary,
               "pipeline_run_id": str(get_step_context().pipeline_run.id)}
    series = MetricSeries("unlearn")
    out = unlearn_curated(req, base_model, curated_sets, work_folder() / "checkpoints" / f"{req.request.id}-{key}",
                          Path(tempfile.mkdtemp(prefix="unlearned-")) / "unlearned", lineage, series)
    series.flush()
    mlflow.log_artifact(str(out / CURVES), "unlearning")
    if (out / RANKS).is_file():  # data-parallel: every rank's lambda_t series and weights hash
        mlflow.log_artifact(str(out / RANKS), "unlearning")
    return out
