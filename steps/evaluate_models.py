"""Step: the evaluation suite on the original and the unlearned model, same seeds; metrics and grids to MLflow.

Its files travel to the report as a reference to what it logged to the run, not as a copy in ZenML's store; the
individual samples are not kept (the protocol in results.json regenerates them: same models, seeds and prompts).

Erasures promoted earlier into the same registered model are re-measured on both models (their classes, or
each earlier concept's recorded check), so the gate can refuse a version that brings one back.
"""

from pathlib import Path
from typing import Annotated

from mlflow.tracking import MlflowClient
from zenml import step

from erasediff.request.evaluate import evaluate_request
from erasediff.request.unlearn_curated import MODEL
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.registry import earlier_classes, earlier_concept_checks, earlier_erasures
from mlflow_adapters.step_folders import logged, resolve
from mlflow_adapters.tracking import log_evaluation
from steps.request_parameter import RequestParameter


@step
def evaluate_models(
    request: RequestParameter, base_model: Path, unlearned_model: Path
) -> tuple[Annotated[dict, "evaluation"], Annotated[Path, "evaluation_files"]]:
    out = scratch_dir("evaluation-")
    client = MlflowClient()
    earlier = earlier_erasures(client, request.registry.model_name, request.request.id)
    checks, unmeasurable = earlier_concept_checks(client, earlier, request.target.kind, scratch_dir("checks-"))
    results = evaluate_request(
        request,
        resolve(base_model),
        resolve(unlearned_model) / MODEL,
        out,
        earlier_classes=earlier_classes(earlier),
        earlier_checks=checks,
    )
    results["earlier_erasures"], results["earlier_checks"] = earlier, results["earlier_checks"] + unmeasurable
    log_evaluation(results, out, [c.request_id for c in checks])
    return results, logged(out, "evaluation")
