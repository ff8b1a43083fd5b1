"""Step: the evaluation suite on the original and the unlearned model, same seeds; metrics and grids to MLflow.

Erasures promoted earlier into the same registered model are re-measured on both models (their classes, or
each earlier concept's recorded check), so the gate can refuse a version that brings one back.
"""

import tempfile
from pathlib import Path
from typing import Annotated

from mlflow.tracking import MlflowClient
from zenml import step

from erasediff.evaluate import RESULTS_JSON, RESULTS_MD
from erasediff.request import ErasureRequest
from erasediff.request_evaluation import EARLIER, evaluate_request
from erasediff.unlearn_job import MODEL
from steps.registry import earlier_classes, earlier_concept_checks, earlier_erasures
from steps.tracking import log_files, log_metrics


@step
def evaluate_models(request: dict, base_model: Path, unlearned_model: Path) -> tuple[Annotated[dict, "evaluation"], Annotated[Path, "evaluation_files"]]:
    req = ErasureRequest.model_validate(request)
    out = Path(tempfile.mkdtemp(prefix="evaluation-"))
    client = MlflowClient()
    earlier = earlier_erasures(client, req.registry.model_name, req.request.id)
    checks, unmeasurable = earlier_concept_checks(client, earlier, req.target.kind, Path(tempfile.mkdtemp(prefix="checks-")))
    results = evaluate_request(req, base_model, unlearned_model / MODEL, out, earlier_classes=earlier_classes(earlier), earlier_checks=checks)
    results["earlier_erasures"], results["earlier_checks"] = earlier, results["earlier_checks"] + unmeasurable
    for name in ("original", "unlearned"):
        log_metrics(results["models"][name]["metrics"], f"eval.{name}")
        log_metrics({f"{row['request_id']}.{row['metric']}": row[name] for row in results["earlier_checks"] if row[name] is not None},
                    f"eval.{name}.{EARLIER}")
    log_metrics(results["delta"], "eval.delta")
    log_files([out / RESULTS_JSON, out / RESULTS_MD], "evaluation")
    log_files(sorted((out / "grids").glob("*.png")), "evaluation/grids")
    for check in checks:
        detail = out / EARLIER / check.request_id
        log_files([detail / RESULTS_JSON, detail / RESULTS_MD, *sorted((detail / "grids").glob("*.png"))], f"evaluation/{EARLIER}/{check.request_id}")
    return results, out
