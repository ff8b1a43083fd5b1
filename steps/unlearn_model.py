"""Step: EraseDiff on the curated sets; per-step metrics as MLflow series; resumes from checkpoints when retried.
The unlearned model leaves as a part manifest: its parts go once into the registry's part store."""

from pathlib import Path
from typing import Annotated

import mlflow
from zenml import get_step_context, step

from erasediff.request.unlearn_curated import CURVES, MODEL, RANKS, unlearn_curated
from erasediff.util.hashing import config_hash
from erasediff.util.workdir import scratch_dir, work_folder
from mlflow_adapters.step_folders import STORED_BYTES, resolve, stored
from mlflow_adapters.tracking import MetricSeries, log_request_params
from steps.request_parameter import RequestParameter


@step
def unlearn_model(
    request: RequestParameter, base_model: Path, base_model_sha256: str, curated_sets: Path, curation_summary: dict
) -> Annotated[Path, "unlearned_model"]:
    log_request_params(request)
    # Same request, settings and data -> same folder, so a retry resumes where the failed attempt stopped.
    key = config_hash(
        {"unlearning": request.unlearning.model_dump(), "base": base_model_sha256, "sets": curation_summary}
    )
    lineage = {
        "request_id": request.request.id,
        "base_model": request.base_model,
        "base_model_sha256": base_model_sha256,
        **curation_summary,
        "pipeline_run_id": str(get_step_context().pipeline_run.id),
    }
    series = MetricSeries("unlearn")
    out = unlearn_curated(
        request,
        resolve(base_model),
        curated_sets,
        work_folder() / "checkpoints" / f"{request.request.id}-{key}",
        scratch_dir("unlearned-") / "unlearned",
        lineage,
        series,
    )
    series.flush()
    mlflow.log_artifact(str(out / CURVES), "unlearning")
    if (out / RANKS).is_file():  # data-parallel: every rank's lambda_t series and weights hash
        mlflow.log_artifact(str(out / RANKS), "unlearning")
    # the parts a promotion will register, stored once
    manifest, added = stored(out, request.registry.registers_into, request.request.id, MODEL)
    mlflow.log_metric(STORED_BYTES, added)
    return manifest
