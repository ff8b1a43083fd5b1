"""Not a step: the request's ZenML model version, which the promote and report steps record. It is named after the
request id and created by the promote step only when every gate passed, with the gate values as its metadata and the
run's unlearned model, gate report, evaluation and erasure report linked to it. ZenML's Models page then lists the
erasures that passed, one version per request; a gated-out or failed run creates none (a pipeline-level `Model`
would create a numbered version for every run)."""

from zenml import Model, link_artifact_to_model, log_metadata

from erasediff.request.schema import ErasureRequest


def request_model(request: ErasureRequest) -> Model:
    return Model(
        name=request.registry.model_name,
        version=request.request.id,
        description=f"EraseDiff erasures registered as MLflow model {request.registry.model_name}",
        tags=["erasediff"],
    )


def record_model_version(request: ErasureRequest, promotion: dict, gate_report: dict, artifacts: list) -> None:
    """Create the version (or find it, when a resumed run gets here again), link `artifacts` and log the gates."""
    model = request_model(request)
    for artifact in artifacts:
        link_artifact_to_model(artifact, model)
    log_metadata(
        metadata={
            "gates": {g["gate"]: g["value"] for g in gate_report["gates"]},
            "thresholds": {g["gate"]: g["threshold"] for g in gate_report["gates"]},
            "mlflow_registered_model": promotion,
        },
        model_name=model.name,
        model_version=request.request.id,
    )
