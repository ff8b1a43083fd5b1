"""Where an erasure request stands, read from ZenML's run records and the MLflow registry (no private database).

States: promoted (a registered version carries the request id; with required approval: candidate (awaiting approval),
approved or rejected), gated out (the run completed with the verdict gated_out in its metadata; runs before that
verdict was recorded ended as failed on GateRefused),
failed (at which step, with its one-line error), running, queued, stopped, or unknown.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path

from erasediff.util.locks import is_held


@dataclass
class RequestStatus:
    request_id: str
    state: str
    detail: str
    pipeline_run: str | None = None
    registry: dict = field(default_factory=dict)

    def line(self) -> str:
        run = f"; pipeline run {self.pipeline_run}" if self.pipeline_run else ""
        return f"request {self.request_id}: {self.state}: {self.detail}{run}"

    def as_dict(self) -> dict:
        return asdict(self)


QUEUED = {"initializing", "provisioning"}
REVIEW_STATES = {
    "pending": "candidate (awaiting approval)",
    "approved": "approved",
    "rejected": "rejected",
}  # automatic: promoted
RUNNING = {"running", "retrying", "stopping"}


def request_runs(request_id: str) -> list:
    """ZenML runs of the erasure pipeline for this request, newest first (run names are erasure-<id>-<date>-<time>)."""
    from zenml.client import Client

    from pipelines.run_request import run_prefix

    runs = (
        Client()
        .list_pipeline_runs(name=f"startswith:{run_prefix(request_id)}", sort_by="desc:created", size=50, hydrate=True)
        .items
    )
    return [
        r
        for r in runs
        if ((r.config.parameters or {}).get("request") or {}).get("request", {}).get("id", request_id) == request_id
    ]


def request_status(request_id: str, tracking_uri: str, lock: Path | None = None) -> RequestStatus:
    """`lock`: the request's lock file in the work folder of a local run. A run ZenML still calls running or queued
    while no process holds that lock was killed: it is reported as interrupted, and re-running the request resumes
    it."""
    from mlflow.tracking import MlflowClient

    from erasediff.reporting.html_report import REPORT_DIR, REPORT_HTML
    from mlflow_adapters.audit import alias_problems, read_log
    from mlflow_adapters.registry import REQUEST_TAG, version_run
    from mlflow_adapters.review import DECISION, served_first
    from pipelines.run_request import failure
    from steps.report import gated_out_detail

    runs = request_runs(request_id)
    name = runs[0].name if runs else None
    client = MlflowClient(tracking_uri=tracking_uri)
    if versions := served_first(client.search_model_versions(f"tags.{REQUEST_TAG} = '{request_id}'")):
        v = versions[0]
        aliases = client.get_model_version(v.name, v.version).aliases
        held = f" (holds @{', @'.join(aliases)})" if aliases else " (no alias now)"
        if drift := alias_problems(client, v.name, read_log(client, v.name)):
            held += f"; warning: {drift[0]} (erasediff audit {v.name} --verify)"
        report = f"runs:/{version_run(v)}/{REPORT_DIR}/{REPORT_HTML}"  # also under the version's own report/
        decision = v.tags.get(DECISION, "automatic")
        review = (
            f"; {decision} by {v.tags.get('review.reviewer')} at {v.tags.get('review.time')}"
            if decision in ("approved", "rejected")
            else ""
        )
        return RequestStatus(
            request_id,
            REVIEW_STATES.get(decision, "promoted"),
            f"registered as {v.name} version {v.version}{held}{review}; report {report}",
            name,
            {
                "model_name": v.name,
                "version": int(v.version),
                "aliases": list(aliases),
                "report": report,
                "decision": decision,
            },
        )
    if not runs:
        return RequestStatus(request_id, "unknown", "no pipeline run and no registered version carries this request id")
    run, status = runs[0], runs[0].status.value
    if status in QUEUED | RUNNING and lock is not None and not is_held(lock):
        return RequestStatus(
            request_id,
            "interrupted (resumable)",
            f"pipeline run {run.name} was {status} but no process holds it; "
            "submit the request again to resume from its last checkpoint",
            name,
        )
    if status in QUEUED:
        return RequestStatus(request_id, "queued", f"pipeline run {status}", name)
    if status in RUNNING:
        active = [s for s, step in run.steps.items() if step.status.value == "running"]
        return RequestStatus(request_id, "running", f"step {', '.join(active) or '(starting)'}", name)
    if (detail := gated_out_detail(run)) is not None:
        return RequestStatus(request_id, "gated out", detail, name)
    if status == "failed":
        step, source, message = failure(run)
        if source.endswith("GateRefused"):
            return RequestStatus(request_id, "gated out", message, name)
        return RequestStatus(request_id, "failed", f"at step {step}: {message}", name)
    return RequestStatus(request_id, status, f"pipeline run ended {status} without a registered version", name)


def all_request_ids(tracking_uri: str) -> list[str]:
    """Every request id the stores know: from the erasure pipeline's ZenML runs and the registry's version tags."""
    from mlflow.tracking import MlflowClient
    from zenml.client import Client

    from mlflow_adapters.registry import REQUEST_TAG

    runs = (
        Client().list_pipeline_runs(name="startswith:erasure-", sort_by="desc:created", size=1000, hydrate=True).items
    )
    ids = {((r.config.parameters or {}).get("request") or {}).get("request", {}).get("id") for r in runs}
    ids |= {v.tags.get(REQUEST_TAG) for v in MlflowClient(tracking_uri=tracking_uri).search_model_versions()}
    return sorted(i for i in ids if i)
