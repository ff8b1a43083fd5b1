"""Step: the erasure report of the run (HTML and its JSON twin, logged to the MLflow run and, when promoted, next to
the registered model in its artifacts), then the run's verdict: a gated-out run ends here as failed with
GateRefused, so the runner and `request status` report it as gated out."""

import json
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from mlflow.tracking import MlflowClient
from zenml import get_step_context, step

from erasediff.code_version import code_version
from erasediff.errors import GateRefused
from erasediff.report import write_report
from erasediff.request_evaluation import EARLIER
from erasediff.unlearn_job import CURVES
from steps.curate import VALIDATION
from steps.tracking import log_files

REPORT_DIR = "report"


def _outcome(promotion: dict, gate_report: dict) -> dict:
    if promotion["status"] == "gated-out":
        failed = ", ".join(promotion["failed_gates"]) or "none configured"
        return {"promoted": False, "summary": f"NOT promoted: gate(s) failed: {failed}", "model_name": promotion["model_name"]}
    return {"promoted": True, "summary": f"promoted as {promotion['model_name']} version {promotion['version']}"
            + (f" (@{promotion['alias']})" if "alias" in promotion else " (earlier run)"),
            "model_name": promotion["model_name"], "version": promotion["version"], "alias": promotion.get("alias"),
            "model_uri": promotion.get("model_uri")}


@step
def report(request: dict, base_model_sha256: str, curated_sets: Path, curation_summary: dict, unlearned_model: Path,
           evaluation: dict, evaluation_files: Path, gate_report: dict, promotion: dict) -> Annotated[dict, "erasure_report"]:
    run = mlflow.active_run().info
    facts = {
        "request": request, "base_model_sha256": base_model_sha256,
        "curation": {"summary": curation_summary, "validation": json.loads((curated_sets / VALIDATION).read_text())},
        "earlier_erasures": evaluation.get("earlier_erasures", []), "earlier_checks": evaluation.get("earlier_checks", []),
        "evaluation": {"metrics": {n: evaluation["models"][n]["metrics"] for n in ("original", "unlearned")},
                       "delta": evaluation["delta"], "protocol": evaluation["protocol"]},
        "gates": gate_report, "outcome": _outcome(promotion, gate_report),
        "provenance": {"code_version": code_version(), "pipeline_run_id": str(get_step_context().pipeline_run.id),
                       "mlflow_run_id": run.run_id, "mlflow_experiment_id": run.experiment_id},
    }
    grids = sorted((evaluation_files / "grids").glob("*.png"))
    images = {"Unlearning curves (loss, lambda_t, cosines)": [unlearned_model / CURVES],
              "Before / after samples (same seeds)": [g for g in grids if g.stem.startswith("all")] or grids[:1],
              "Earlier concept erasures re-checked (base / this version)": sorted((evaluation_files / EARLIER).glob("*/grids/*.png"))}
    folder = Path(tempfile.mkdtemp(prefix="report-"))
    html_path, json_path = write_report(facts, images, folder)
    log_files([html_path, json_path], REPORT_DIR)
    if promotion.get("model_id"):  # next to the model: in the registered version's own artifacts
        MlflowClient().log_model_artifacts(promotion["model_id"], str(folder), REPORT_DIR)
    if not facts["outcome"]["promoted"]:
        raise GateRefused(f"{facts['outcome']['summary'].replace('NOT promoted', 'not promoted')}; the registry is unchanged")
    return facts
