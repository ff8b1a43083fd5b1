"""Telling people about a request (its `notify:` block, erasediff/request/notify_settings.py): per event, one JSON POST
to the webhook and one message through the ZenML alerter, with the request id, the verdict and a link to the erasure
report.

Pipeline outcomes (awaiting approval, promoted, gated out, failed) are sent by the process that ran the request once
the run has ended; review decisions (approved, rejected, rolled back) by the `erasediff request` command that made
them, from the `notify` tag the registered version carries. A delivery failure never changes an outcome: it is printed
as a warning and recorded, like a delivery, as the tag `notify.<event>` on the MLflow run or the registered version
the event is about. The URL is never printed or recorded: it carries the webhook's token.
"""

import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass

from mlflow.entities.model_registry import ModelVersion
from mlflow.tracking import MlflowClient

from erasediff.reporting.html_report import REPORT_DIR, REPORT_HTML
from erasediff.request.notify_settings import EVENTS
from mlflow_adapters.registry import NOTIFY_TAG, REQUEST_TAG, version_run
from mlflow_adapters.review import DECISION, served_version

TIMEOUT_S = 10


@dataclass(frozen=True)
class Notice:
    event: str
    request_id: str
    verdict: str
    report: str
    model: str | None = None
    version: int | None = None

    def text(self) -> str:
        """One line for chat webhooks (Slack and Discord-style receivers read `text`)."""
        return f"erasediff request {self.request_id}: {self.event.replace('_', ' ')}: {self.verdict} ({self.report})"


def deliver(settings: dict | None, notice: Notice) -> str | None:
    """Send `notice` on every channel `settings` names, when it asks for its event; how it went, in words, or None when
    nothing was asked."""
    if not settings or notice.event not in settings.get("events", EVENTS):
        return None
    outcomes = [
        send(name, notice)
        for send, name in ((_post_webhook, settings.get("webhook_env")), (_post_alerter, settings.get("alerter")))
        if name
    ]
    for outcome in outcomes:
        if outcome.startswith("not"):
            print(f"warning: notification {notice.event} of request {notice.request_id} {outcome}", file=sys.stderr)
    return "; ".join(outcomes)


def _post_webhook(env: str, notice: Notice) -> str:
    url = os.environ.get(env, "")
    if not url.startswith(("http://", "https://")):
        return f"not delivered: ${env} holds no http(s) URL"
    body = json.dumps({**asdict(notice), "text": notice.text()}).encode()
    post = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(post, timeout=TIMEOUT_S) as response:
            return f"delivered to ${env} (HTTP {response.status})"
    except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTP errors, refusals, timeouts
        return f"not delivered to ${env}: {getattr(exc, 'reason', None) or exc}"


def _post_alerter(name: str, notice: Notice) -> str:
    """Through the ZenML alerter component `name` of the ZenML store this process uses (its `post`, as the alerter
    steps call it)."""
    try:
        from zenml.client import Client
        from zenml.enums import StackComponentType
        from zenml.stack import StackComponent

        component = Client().get_stack_component(StackComponentType.ALERTER, name, allow_name_prefix_match=False)
        posted = StackComponent.from_model(component).post(notice.text())
    except Exception as exc:  # noqa: BLE001 - whatever the alerter raises, a notice never changes an outcome
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"not delivered to ZenML alerter {name}: {first[:300]}"
    return f"delivered to ZenML alerter {name}" if posted else f"not delivered to ZenML alerter {name}: it refused"


def report_link(client: MlflowClient, run_id: str, report: bool = True) -> str:
    """The erasure report of an MLflow run (or, with `report=False`, for a run that failed before writing one, the run
    itself): its page in the MLflow UI on a tracking server, else a runs:/ URI (`mlflow artifacts download -u ...`)."""
    uri = client.tracking_uri
    path = f"/{REPORT_DIR}/{REPORT_HTML}" if report else ""
    if uri.startswith(("http://", "https://")):
        scheme, rest = uri.split("://", 1)
        host = rest.rsplit("@", 1)[-1].rstrip("/")  # never a user:password written into a URI
        experiment = client.get_run(run_id).info.experiment_id
        return f"{scheme}://{host}/#/experiments/{experiment}/runs/{run_id}" + (f"/artifacts{path}" if report else "")
    return f"runs:/{run_id}{path}"


def completed_outcome(tracking_uri: str, request_id: str) -> tuple[str, str]:
    """(event, verdict) of a run that completed: its version awaits approval, or was promoted."""
    version = served_version(MlflowClient(tracking_uri=tracking_uri), request_id)
    where = f"registered as {version.name} version {version.version}"
    if version.tags.get(DECISION) == "pending":
        return "awaiting_approval", f"candidate (awaiting approval): {where}"
    return "promoted", f"promoted: {where}"


def notify_run_outcome(request, tracking_uri: str, event: str, verdict: str) -> str | None:
    """After a pipeline run: the notice for `event`, linked to the request's newest MLflow run, whose tags record the
    delivery."""
    if request.notify is None:
        return None
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(request.tracking.experiment)
    runs = (
        client.search_runs(
            [experiment.experiment_id],
            f"tags.request_id = '{request.request.id}'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if experiment
        else []
    )
    report = (
        report_link(client, runs[0].info.run_id, report=event != "failed")  # a failed run wrote no report
        if runs
        else "no MLflow run: see `erasediff request status`"
    )
    outcome = deliver(request.notify.model_dump(), Notice(event, request.request.id, verdict, report))
    if outcome is not None and runs:
        client.set_tag(runs[0].info.run_id, f"{NOTIFY_TAG}.{event}", outcome)
    return outcome


def notify_review(client: MlflowClient, version: ModelVersion, event: str, verdict: str) -> str | None:
    """After a review command: the notice for `event` about `version`, from the notify block its request registered,
    recorded as a tag on that version."""
    settings = json.loads(version.tags.get(NOTIFY_TAG) or "null")
    if settings is None:
        return None
    run_id = version_run(version)
    notice = Notice(
        event,
        version.tags.get(REQUEST_TAG, "?"),
        verdict,
        report_link(client, run_id) if run_id else "no MLflow run",
        version.name,
        int(version.version),
    )
    outcome = deliver(settings, notice)
    if outcome is not None:
        client.set_model_version_tag(version.name, version.version, f"{NOTIFY_TAG}.{event}", outcome)
    return outcome
