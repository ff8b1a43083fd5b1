"""Step: the evaluation suite on the original and the unlearned model, same seeds; metrics and grids to MLflow.

Classes erased by requests promoted earlier into the same registered model are re-measured on both models,
so the gate can refuse a version that brings one back.
"""

import tempfile
from pathlib import Path
from typing import Annotated

from mlflow.tracking import MlflowClient
from zenml import step

from erasediff.evaluate import RESULTS_JSON, RESULTS_MD
from erasediff.request import ErasureRequest
from erasediff.request_evaluation import evaluate_request
from erasediff.unlearn_job import MODEL
from steps.registry import earlier_classes, earlier_erasures
from steps.tracking import log_files, log_metrics


@step
def evaluate_models(request: dict, base_model: Path, unlearned_model: Path) -> tuple[Annotated[dict, "evaluation"], Annotated[Path, "evaluation_files"]]:
    req = ErasureRequest.model_validate(request)
    out = Path(tempfile.mkdtemp(prefix="evaluation-"))
    earlier = earlier_erasures(MlflowClient(), req.registry.model_name, req.request.id)
    results = evaluate_request(req, base_model, unlearned_model / MODEL, out, earlier_classes=earlier_classes(earlier))
    results["earlier_erasures"] = earlier
    for name in ("original", "unlearned"):
        log_metrics(results["models"][name]["metrics"], f"eval.{name}")
    log_metrics(results["delta"], "eval.delta")
    log_files([out / RESULTS_JSON, out / RESULTS_MD], "evaluation")
    log_files(sorted((out / "grids").glob("*.png")), "evaluation/grids")
    return results, out
