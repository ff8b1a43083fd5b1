"""Step: the erasure report of the run (HTML and its JSON twin, logged to the MLflow run and, when promoted, next to
the registered model in its artifacts), then the run's verdict in its ZenML metadata (`erasediff.verdict`: promoted,
awaiting_approval or gated_out). A gated-out run completes: gating out is an outcome, not a failure, so ZenML's
dashboard shows it with its verdict and report rather than a traceback; the runner and `request status` read the
verdict. The HTML is also a ZenML artifact, linked to the request's model version when it was promoted. Last, the
run's curated sets leave the artifact store (steps/curate_sets.py says why)."""

from pathlib import Path
from typing import Annotated

import mlflow
from mlflow.tracking import MlflowClient
from zenml import get_step_context, link_artifact_to_model, log_metadata, save_artifact, step
from zenml.types import HTMLString

from erasediff.reporting.html_report import REPORT_DIR, REPORT_HTML
from erasediff.request.erasure_report import run_description, write_request_report
from erasediff.util.code_version import code_version
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.step_folders import resolve
from mlflow_adapters.tracking import log_files
from steps.curate_sets import CURATED_SETS, purge_curated_sets
from steps.model_version import request_model
from steps.request_parameter import RequestParameter

VERDICT, VERDICT_DETAIL = "erasediff.verdict", "erasediff.verdict_detail"  # keys of the run's ZenML metadata


def verdict_metadata(event: str, detail: str) -> dict[str, str]:
    return {VERDICT: event, VERDICT_DETAIL: detail}


def gated_out_detail(run) -> str | None:
    """Why a completed ZenML run was gated out, from the verdict this step recorded; None for any other run."""
    if run.status.value == "completed" and run.run_metadata.get(VERDICT) == "gated_out":
        return run.run_metadata[VERDICT_DETAIL]
    return None


@step
def report(
    request: RequestParameter,
    base_model_sha256: str,
    curated_sets: Path,
    curation_summary: dict,
    unlearned_model: Path,
    evaluation: dict,
    evaluation_files: Path,
    gate_report: dict,
    promotion: dict,
) -> Annotated[dict, "erasure_report"]:
    run = mlflow.active_run().info
    provenance = {
        "code_version": code_version(),
        "pipeline_run_id": str(get_step_context().pipeline_run.id),
        "mlflow_run_id": run.run_id,
        "mlflow_experiment_id": run.experiment_id,
    }
    folder = scratch_dir("report-")
    facts, files = write_request_report(
        request,
        base_model_sha256,
        curated_sets,
        curation_summary,
        resolve(unlearned_model),
        evaluation,
        resolve(evaluation_files),
        gate_report,
        promotion,
        provenance,
        folder,
    )
    log_files(files, REPORT_DIR)
    html = save_artifact(HTMLString((folder / REPORT_HTML).read_text()), name="erasure_report_html")
    mlflow.set_tag(
        "mlflow.note.content", run_description(request, facts["outcome"])
    )  # the run's description in the MLflow UI
    if promotion.get("model_id"):  # next to the model: in the registered version's own artifacts
        MlflowClient().log_model_artifacts(promotion["model_id"], str(folder), REPORT_DIR)
        link_artifact_to_model(html, request_model(request))
    outcome = facts["outcome"]
    verdict = "awaiting_approval" if promotion.get("awaiting_approval") else "promoted"
    purged = purge_curated_sets(get_step_context().inputs["curated_sets"][0].uri)
    log_metadata(
        metadata={
            **verdict_metadata(
                verdict if outcome["promoted"] else "gated_out",
                outcome["summary"].replace("NOT promoted", "not promoted")
                + ("" if outcome["promoted"] else "; the registry is unchanged"),
            ),
            CURATED_SETS: purged,
        },
        run_id_name_or_prefix=get_step_context().pipeline_run.id,
    )
    return facts
