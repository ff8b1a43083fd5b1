"""Two-stage promotion and the audit trail (issue: review and sign-off), on a real SQLite MLflow registry.

Versions are registered through `promote_model` itself (the promote step's library call) with the packaged digits
model; the CLI's approve, reject, rollback and audit commands then act on them. Times in the audit log have a
resolution of one second, so the test waits a second between moves it wants to tell apart.
"""

import json
import time
from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow.tracking import MlflowClient

from erasediff.request.schema import ErasureRequest
from mlflow_adapters.audit import read_log
from mlflow_adapters.promotion import promote_model
from mlflow_adapters.registry import earlier_erasures
from mlflow_adapters.store import artifacts_beside, open_experiment
from pipelines.cli import main as cli
from tests.conftest import merge, mlflow_tracking

pytestmark = pytest.mark.integration  # registers five pyfunc versions (about half a minute)

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"
MODEL = "erasediff-review-test"
CANDIDATES = f"{MODEL}-candidates"  # where a request awaiting review registers its version
PASSED = {
    "passed": True,
    "gates": [{"gate": "forgotten_accuracy_max", "value": 0.01, "threshold": 0.2, "passed": True}],
}


def request(rid: str, classes: list[int], requester: str = "alice@example.com") -> ErasureRequest:
    config = merge(
        yaml.safe_load(EXAMPLE.read_text()),
        {
            "request": {"id": rid, "requester": requester},
            "target": {"classes": classes},
            "registry": {"model_name": MODEL, "approval": "required"},
            "evaluation": {"neighbours": [1, 2]},
        },
    )
    return ErasureRequest.model_validate(config)


def register(req: ErasureRequest, model_dir: Path) -> dict:
    earlier = earlier_erasures(MlflowClient(), MODEL, req.request.id)  # what the evaluation would have re-checked
    with mlflow.start_run() as run:
        return promote_model(
            req,
            model_dir,
            "sha-base",
            {"forget_sha256": "f", "retain_sha256": "r"},
            PASSED,
            earlier,
            {"code_version": "test", "pipeline_run_id": "p", "mlflow_run_id": run.info.run_id},
        )


def run_cli(capsys, uri: str, *args: str) -> tuple[int, str, str]:
    code = cli([*args, "--tracking-uri", uri])
    out = capsys.readouterr()
    return code, out.out, out.err


def champion(client: MlflowClient) -> int | None:
    try:
        return int(client.get_model_version_by_alias(MODEL, "champion").version)
    except mlflow.exceptions.MlflowException:
        return None


def test_candidate_approval_audit_and_rollback(model_copy: Path, tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_tracking(uri):
        open_experiment(uri, "review", artifacts_beside(uri))
        mlflow.set_experiment("review")
        client = MlflowClient(uri)
        a = register(request("REQ-A", [3]), model_copy)
        assert (a["status"], a["alias"], a["awaiting_approval"]) == ("promoted", "candidate", True)
        pending = client.get_model_version(CANDIDATES, "1")
        assert (
            champion(client) is None
            and pending.tags["review.decision"] == "pending"
            and pending.description.startswith("Classes [3] erased")
        )
        before_a = time.time()
        time.sleep(1.1)

        code, _, err = run_cli(capsys, uri, "request", "approve", "REQ-A", "--reviewer", "Alice@example.com")
        assert code == 2 and "four eyes" in err and champion(client) is None  # the requester cannot approve

        code, out, _ = run_cli(
            capsys,
            uri,
            "request",
            "approve",
            "REQ-A",
            "--reviewer",
            "bob@example.com",
            "--comment",
            "checked the grids",
        )
        assert code == 0 and "@champion now on version 1" in out
        v1, c1 = client.get_model_version(MODEL, "1"), client.get_model_version(CANDIDATES, "1")
        assert champion(client) == 1 and "candidate" not in c1.aliases  # a copy of the candidate serves
        assert (v1.tags["review.decision"], v1.tags["review.reviewer"], v1.tags["review.comment"]) == (
            "approved",
            "unauthenticated (typed: bob@example.com)",  # a SQLite store knows nobody: the record says so
            "checked the grids",
        )
        assert (v1.tags["request_id"], v1.tags["storage.folder_sha256"]) == (
            c1.tags["request_id"],
            c1.tags["storage.folder_sha256"],
        )
        code, _, err = run_cli(capsys, uri, "request", "approve", "REQ-A", "--reviewer", "carol@example.com")
        assert code == 2 and "not awaiting review" in err
        between = time.time()
        time.sleep(1.1)

        register(request("REQ-B", [5], requester="dpo@example.com"), model_copy)
        assert champion(client) == 1  # a candidate does not serve
        code, _, err = run_cli(capsys, uri, "request", "approve", "REQ-B", "--reviewer", "bob@example.com")
        assert code == 0, err
        assert champion(client) == 2

        def at(t: float) -> dict:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))
            code, out, _ = run_cli(capsys, uri, "audit", MODEL, "--at", stamp, "--json")
            assert code == 0
            return json.loads(out)

        assert at(before_a)["version"] is None
        answer = at(between)
        assert (answer["version"], answer["by"], answer["request_id"], answer["erased"]) == (
            1,
            "unauthenticated (typed: bob@example.com)",
            "REQ-A",
            "classes [3]",
        )
        now = at(time.time() + 1)
        assert (now["version"], now["request_id"], now["requester"]) == (2, "REQ-B", "dpo@example.com")

        code, _, err = run_cli(
            capsys,
            uri,
            "request",
            "rollback",
            MODEL,
            "--to",
            "1",
            "--reviewer",
            "bob@example.com",
            "--reason",
            "regression",
        )
        assert code == 2 and "REQ-B" in err and "in force" in err and champion(client) == 2  # 5 would come back
        code, _, _ = run_cli(
            capsys,
            uri,
            "request",
            "rollback",
            MODEL,
            "--to",
            "1",
            "--reviewer",
            "bob@example.com",
            "--reason",
            "legal hold lifted",
            "--force",
        )
        assert code == 0 and champion(client) == 1
        assert (
            read_log(client, MODEL)[-1].action == "rollback (forced)"
            and read_log(client, MODEL)[-1].reason == "legal hold lifted"
        )


def test_rejection_and_a_stale_candidate(model_copy: Path, tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    with mlflow_tracking(uri):
        open_experiment(uri, "review", artifacts_beside(uri))
        mlflow.set_experiment("review")
        client = MlflowClient(uri)
        register(request("REQ-C", [3]), model_copy)
        code, out, _ = run_cli(
            capsys,
            uri,
            "request",
            "reject",
            "REQ-C",
            "--reviewer",
            "bob@example.com",
            "--comment",
            "neighbours too weak",
        )
        assert code == 0 and "rejected" in out
        c1 = client.get_model_version(CANDIDATES, "1")
        assert c1.tags["review.decision"] == "rejected" and not c1.aliases and champion(client) is None

        register(request("REQ-D", [4]), model_copy)  # candidate 2, gated against the model as it is now
        register(request("REQ-E", [5]), model_copy)  # candidate 3, approved first: version 1 of the model
        assert run_cli(capsys, uri, "request", "approve", "REQ-E", "--reviewer", "bob@example.com")[0] == 0
        code, _, err = run_cli(capsys, uri, "request", "approve", "REQ-D", "--reviewer", "bob@example.com")
        assert code == 2 and "REQ-E (version 1)" in err and champion(client) == 1

        code, out, _ = run_cli(capsys, uri, "audit", CANDIDATES, "--log", "--json")
        actions = [(e["action"], e["from_version"], e["to_version"]) for e in json.loads(out)]
        assert actions == [
            ("candidate", None, 1),
            ("reject", 1, None),
            ("candidate", None, 2),  # @candidate moves on; each version's decision is in its tags
            ("candidate", 2, 3),
            ("approve", 3, None),
        ]
        code, out, _ = run_cli(capsys, uri, "audit", MODEL, "--log", "--json")
        assert [(e["action"], e["to_version"]) for e in json.loads(out)] == [("approve", 1)]
