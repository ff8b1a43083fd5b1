"""The erasure pipeline: base model -> curated, validated sets -> EraseDiff -> side-by-side evaluation -> gates ->
promotion (and the request's ZenML model version, only when the gates pass) -> erasure report and the run's verdict
(a gated-out run completes, with `erasediff.verdict: gated_out` in its metadata).

Caching is off: a data folder or a `models:/name@alias` base can change under an unchanged request.
Every step logs to the stack's MLflow experiment tracker (one MLflow run per pipeline run).
"""

from zenml import pipeline
from zenml.client import Client

from erasediff.util.errors import ErasediffError
from steps.curate_sets import curate_sets
from steps.evaluate_models import evaluate_models
from steps.gate import gate
from steps.load_base_model import load_base_model
from steps.promote import promote
from steps.report import report
from steps.request_parameter import RequestParameter
from steps.unlearn_model import unlearn_model


def experiment_tracker_name() -> str:
    tracker = Client().active_stack_model.components.get("experiment_tracker")
    if not tracker:
        raise ErasediffError(
            f"the active ZenML stack '{Client().active_stack_model.name}' has no MLflow experiment tracker"
        )
    return tracker[0].name


@pipeline(enable_cache=False)
def erasure_pipeline(request: RequestParameter) -> None:
    tracked = {"experiment_tracker": experiment_tracker_name()}
    base, base_sha256 = load_base_model.with_options(**tracked)(request)
    sets, summary = curate_sets.with_options(**tracked)(request, base)
    unlearned = unlearn_model.with_options(**tracked)(request, base, base_sha256, sets, summary)
    evaluation, evaluation_files = evaluate_models.with_options(**tracked)(request, base, unlearned)
    gate_report = gate.with_options(**tracked)(request, evaluation)
    promotion = promote.with_options(**tracked)(request, unlearned, base_sha256, summary, gate_report, evaluation)
    report.with_options(**tracked)(
        request, base_sha256, sets, summary, unlearned, evaluation, evaluation_files, gate_report, promotion
    )
