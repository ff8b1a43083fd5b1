"""Notifications (a request's `notify:` block) reach a local HTTP receiver, one per event, each with the request id, the
verdict and a link to the report; a delivery that fails changes no outcome and is recorded. Promoted and gated out are
checked on the compliance sequence (tests/test_compliance.py); this file covers awaiting approval, approved, rejected,
rolled back and failed, with real pipeline runs (ZenML local orchestrator, SQLite MLflow registry) and the CLI."""

import json
import os
from pathlib import Path

import mlflow
import pytest
from conftest import WEBHOOK_ENV, merge, mlflow_tracking
from mlflow.tracking import MlflowClient
from test_pipeline import write_request

from erasediff.request.schema import ErasureRequest
from mlflow_adapters.promotion import promote_model
from mlflow_adapters.registry import earlier_erasures
from mlflow_adapters.store import artifacts_beside, open_experiment
from pipelines.cli import main as cli
from pipelines.run_request import FAILED, PROMOTED, main, prepare_workdir

pytestmark = pytest.mark.integration  # one short pipeline run to a candidate, one that fails at curation

MODEL = "erasediff-notify-test"
NOTIFY = {"notify": {"webhook_env": WEBHOOK_ENV}}
# a few updates and open gates: a candidate awaiting review, quickly (the erasure itself is measured elsewhere)
QUICK = {
    "unlearning": {"recipe": "paper", "advanced": {"steps": 5}},
    "checkpoint_every": 0,
    "registry": {"model_name": MODEL, "approval": "required"},
    "gates": {"forgotten_accuracy_max": 1.0, "retained_accuracy_drop_max": 1.0, "fid_increase_max": None},
    **NOTIFY,
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("notify-work")


def events(received: list[dict], request_id: str) -> dict[str, dict]:
    return {m["event"]: m for m in received if m.get("request_id") == request_id}  # webhook bodies, not alerter posts


def run_tag(work: Path, request_id: str, event: str) -> str:
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()], f"tags.request_id = '{request_id}'"
    )
    return runs[0].data.tags[f"notify.{event}"]


def cli_in(work: Path, *args: str) -> int:
    return cli([*args, "--workdir", str(work)])


def register(work: Path, model_dir: Path, rid: str, approval: str) -> None:
    """A second and third version, registered by the promote step's library call (no pipeline run needed)."""
    req = ErasureRequest.model_validate(
        merge(
            json.loads(json.dumps(QUICK)),
            {
                "request": {"id": rid, "requester": "alice@example.com", "reason": "test"},
                "target": {"classes": [5]},
                "registry": {"approval": approval},
            },
        )
    )
    uri = f"sqlite:///{work / 'mlflow.db'}"
    with mlflow_tracking(uri):
        open_experiment(uri, "erasediff", artifacts_beside(uri))
        mlflow.set_experiment("erasediff")
        earlier = earlier_erasures(MlflowClient(), MODEL, rid)  # what the evaluation would have re-checked
        with mlflow.start_run(tags={"request_id": rid}) as run:
            promote_model(
                req,
                model_dir,
                "sha-base",
                {"forget_sha256": "f", "retain_sha256": "r"},
                {"passed": True, "gates": []},
                earlier,
                {"code_version": "test", "pipeline_run_id": "p", "mlflow_run_id": run.info.run_id},
            )


def test_each_review_event_is_told_with_its_verdict_and_report(
    webhook: list[dict], work: Path, tmp_path: Path, model_copy: Path, capsys
) -> None:
    rc = main([str(write_request(tmp_path, "REQ-N1", **QUICK)), "--workdir", str(work)])
    assert rc == PROMOTED, capsys.readouterr().err[-2000:]
    waiting = events(webhook, "REQ-N1")["awaiting_approval"]
    assert waiting["verdict"] == f"candidate (awaiting approval): registered as {MODEL}-candidates version 1"
    assert waiting["report"].startswith("runs:/") and waiting["report"].endswith("/report/erasure_report.html")
    report = Path(
        mlflow.artifacts.download_artifacts(waiting["report"], tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    )
    assert "REQ-N1" in report.read_text()  # the link opens this request's report
    assert run_tag(work, "REQ-N1", "awaiting_approval").startswith(f"delivered to ${WEBHOOK_ENV}")
    assert "REQ-N1" in waiting["text"] and "awaiting approval" in waiting["text"]

    assert cli_in(work, "request", "approve", "REQ-N1", "--reviewer", "bob@example.com") == 0
    approved = events(webhook, "REQ-N1")["approved"]
    assert "approved by unauthenticated (typed: bob@example.com)" in approved["verdict"]
    assert (approved["model"], approved["version"]) == (MODEL, 1) and approved["report"] == waiting["report"]

    register(work, model_copy, "REQ-N2", "required")
    assert cli_in(work, "request", "reject", "REQ-N2", "--reviewer", "bob@example.com", "--comment", "grid") == 0
    assert "rejected by" in events(webhook, "REQ-N2")["rejected"]["verdict"]

    register(work, model_copy, "REQ-N3", "automatic")  # version 2 serves; rolling back past it needs --force
    assert (
        cli_in(
            work, "request", "rollback", MODEL, "--to", "1", "--reason", "regression", "--force", "--reviewer", "bob"
        )
        == 0
    )
    rolled = events(webhook, "REQ-N3")["rolled_back"]
    assert "from version 2 to 1" in rolled["verdict"] and "regression" in rolled["verdict"]
    client = MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    assert client.get_model_version(MODEL, "2").tags["notify.rolled_back"].startswith("delivered")
    assert {m["event"] for m in webhook} >= {"awaiting_approval", "approved", "rejected", "rolled_back"}


def test_a_failed_run_is_told_which_step_and_a_lost_delivery_changes_nothing(
    webhook: list[dict], work: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    forget = tmp_path / "forget"
    forget.mkdir()
    (forget / "labels.csv").write_text("file,label\nmissing.png,3\n")
    path = write_request(tmp_path, "REQ-N4", **merge(QUICK, {"data": {"forget": str(forget), "retain": "digits"}}))
    assert main([str(path), "--workdir", str(work)]) == FAILED
    failed = events(webhook, "REQ-N4")["failed"]
    assert failed["verdict"].startswith("step curate_sets failed:") and "missing.png" in failed["verdict"]
    assert failed["report"].startswith("runs:/") and "/report/" not in failed["report"]  # no report: the run itself

    capsys.readouterr()
    monkeypatch.setenv(WEBHOOK_ENV, "http://127.0.0.1:9/closed")  # nothing listens on the discard port
    assert (
        main(
            [
                str(write_request(tmp_path, "REQ-N5", **merge(QUICK, {"data": {"forget": str(forget)}}))),
                "--workdir",
                str(work),
            ]
        )
        == FAILED
    )
    err = capsys.readouterr().err
    assert "warning: notification failed of request REQ-N5 not delivered" in err and "127.0.0.1:9" not in err
    assert run_tag(work, "REQ-N5", "failed").startswith(f"not delivered to ${WEBHOOK_ENV}")
    assert not events(webhook, "REQ-N5")
    from zenml.client import Client

    run = Client().list_pipeline_runs(name="startswith:erasure-REQ-N5-", hydrate=True).items[0]
    metadata = run.run_metadata
    assert metadata["erasediff.verdict"] == "failed" and metadata["notify.failed"].startswith("not delivered")


def test_a_zenml_alerter_named_in_the_request_is_told_too(webhook: list[dict], work: Path, tmp_path: Path) -> None:
    """`notify: {alerter: NAME}`: the ZenML alerter component of that name (a flavor registered in the real ZenML
    store: tests/webhook_alerter.py) posts the same one-line notice; one that cannot post changes no outcome."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    forget = tmp_path / "forget"
    forget.mkdir()
    (forget / "labels.csv").write_text("file,label\nmissing.png,3\n")
    prepare_workdir(work, own_store=True)
    client = Client()  # the work folder's ZenML store, as the runs below use it
    client.create_flavor(source="webhook_alerter.WebhookAlerterFlavor", component_type=StackComponentType.ALERTER)
    url = os.environ[WEBHOOK_ENV]
    client.create_stack_component("team-alerts", "test-webhook", StackComponentType.ALERTER, {"url": url})
    client.create_stack_component(
        "broken-alerts", "test-webhook", StackComponentType.ALERTER, {"url": "http://127.0.0.1:9/"}
    )
    both = {"notify": {"alerter": "team-alerts", "webhook_env": WEBHOOK_ENV}}
    path = write_request(tmp_path, "REQ-N6", **merge(QUICK, {**both, "data": {"forget": str(forget)}}))
    assert main([str(path), "--workdir", str(work)]) == FAILED
    told = [m for m in webhook if m.get("alerter") == "team-alerts" and "REQ-N6" in m["text"]]
    assert len(told) == 1 and "failed: step curate_sets failed" in told[0]["text"] and "(runs:/" in told[0]["text"]
    assert events(webhook, "REQ-N6")["failed"]  # and the webhook, beside it
    tag = run_tag(work, "REQ-N6", "failed")
    assert "delivered to ZenML alerter team-alerts" in tag and f"delivered to ${WEBHOOK_ENV}" in tag

    path = write_request(
        tmp_path, "REQ-N7", **merge(QUICK, {"notify": {"alerter": "broken-alerts"}, "data": {"forget": str(forget)}})
    )
    assert main([str(path), "--workdir", str(work)]) == FAILED  # the same outcome, the failed delivery recorded
    assert "not delivered to ZenML alerter broken-alerts: <urlopen error" in run_tag(work, "REQ-N7", "failed")
