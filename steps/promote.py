"""Step: register the unlearned model and move the alias to it, only when every gate passed; once per request id.
Then, and only then, the request's ZenML model version is created (steps/model_version.py).

A gated-out model is not registered; the report step then records the run's verdict as gated out.
"""

from pathlib import Path
from typing import Annotated

import mlflow
from zenml import get_step_context, step

from erasediff.request.unlearn_curated import MODEL
from erasediff.util.code_version import code_version
from mlflow_adapters.promotion import promote_model
from mlflow_adapters.step_folders import resolve
from steps.model_version import record_model_version
from steps.request_parameter import RequestParameter


@step
def promote(
    request: RequestParameter,
    unlearned_model: Path,
    base_model_sha256: str,
    curation_summary: dict,
    gate_report: dict,
    evaluation: dict,
) -> Annotated[dict, "promotion"]:
    provenance = {
        "pipeline_run_id": str(get_step_context().pipeline_run.id),
        "mlflow_run_id": mlflow.active_run().info.run_id,
        "code_version": code_version(),
    }
    promotion = promote_model(
        request,
        resolve(unlearned_model) / MODEL,
        base_model_sha256,
        curation_summary,
        gate_report,
        evaluation.get("earlier_erasures", []),
        provenance,
    )
    if promotion["status"] == "promoted":
        inputs = get_step_context().inputs
        linked = [a for name in ("unlearned_model", "gate_report", "evaluation") for a in inputs.get(name, [])]
        record_model_version(request, promotion, gate_report, linked)
    return promotion
