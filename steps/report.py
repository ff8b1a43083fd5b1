"""Step: the erasure report of the run (HTML and its JSON twin, logged to the MLflow run and, when promoted, next to
the registered model in its artifacts), then the run's verdict: a gated-out run ends here as failed with
GateRefused, so the runner and `request status` report it as gated out. The HTML is also a ZenML artifact, saved before
that verdict, so ZenML's dashboard shows the report of every run, gated out or not."""

from pathlib import Path
from typing import Annotated

import mlflow
from mlflow.tracking import MlflowClient
from zenml import get_step_context, save_artifact, step
from zenml.types import HTMLString

from erasediff.reporting.html_report import REPORT_DIR, REPORT_HTML
from erasediff.request.erasure_report import run_description, write_request_report
from erasediff.request.schema import ErasureRequest
from erasediff.util.code_version import code_version
from erasediff.util.errors import GateRefused
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.step_folders import resolve
from mlflow_adapters.tracking import log_files


@step
def report(
    request: ErasureRequest,
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
        evaluation_files,
        gate_report,
        promotion,
        provenance,
        folder,
    )
    log_files(files, REPORT_DIR)
    save_artifact(HTMLString((folder / REPORT_HTML).read_text()), name="erasure_report_html")
    mlflow.set_tag(
        "mlflow.note.content", run_description(request, facts["outcome"])
    )  # the run's description in the MLflow UI
    if promotion.get("model_id"):  # next to the model: in the registered version's own artifacts
        MlflowClient().log_model_artifacts(promotion["model_id"], str(folder), REPORT_DIR)
    if not facts["outcome"]["promoted"]:
        raise GateRefused(
            f"{facts['outcome']['summary'].replace('NOT promoted', 'not promoted')}; the registry is unchanged"
        )
    return facts
