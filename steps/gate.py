"""Step: check every threshold of the request against the evaluation (fail closed) and log the gate report (to MLflow,
and to ZenML as a Markdown table its dashboard shows)."""

from typing import Annotated

import mlflow
from zenml import save_artifact, step
from zenml.types import MarkdownString

from erasediff.request.gates import evaluate_gates
from steps.request_parameter import RequestParameter


@step
def gate(request: RequestParameter, evaluation: dict) -> Annotated[dict, "gate_report"]:
    report = evaluate_gates(request.gates, evaluation)
    mlflow.log_dict(report.as_dict(), "gates/gate_report.json")
    mlflow.log_text(report.table(), "gates/gate_report.txt")
    mlflow.log_metrics({f"gate.{g.gate}": g.value for g in report.gates if g.value is not None})
    mlflow.set_tag("gates.passed", str(report.passed).lower())
    save_artifact(MarkdownString(report.markdown()), name="gate_table")
    print(report.table())
    return report.as_dict()
