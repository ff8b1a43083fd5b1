"""Sign-off that the registry enforces, on a real `mlflow server --app-name basic-auth` with the four accounts of
deploy/mlflow/accounts.py (pipeline, requester, reviewer, serving).

The pipeline's account registers a candidate of the packaged digits model (through `promote_model`, the promote
step's library call) into `<model>-candidates`. Then, each as itself (credentials in the environment only): the
requester and the pipeline's account cannot approve (four eyes, by the identity the server vouches for) and cannot
move `@champion` with plain MLflow (HTTP 403 from the server, not our check); the serving account's approval is
refused by the server in one line naming the permission; the reviewer's approval copies the candidate into
`<model>` with its lineage, and the serving account loads `<model>@champion` but cannot write to it.
"""

import json
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import basic_auth_server, merge, mlflow_tracking
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from deploy.mlflow.accounts import set_up
from erasediff.defaults.digits_models import MODEL_DIR
from erasediff.request.schema import ErasureRequest
from erasediff.util.hashing import folder_hash
from mlflow_adapters.promotion import promote_model
from mlflow_adapters.registry import registered_model_folder
from pipelines.cli import main as cli

pytestmark = pytest.mark.integration  # a server, a registered pyfunc and its copy (about a minute)

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"
MODEL = "erasediff-signoff"
PASSWORDS = {a: f"{a}-pw-" + "0c7d2e9a41b8" for a in ("pipeline", "requester", "reviewer", "serving")}
LINEAGE = (
    "request_id",
    "requester",
    "base_model_sha256",
    "forget_manifest_sha256",
    "gate_report",
    "storage.folder_sha256",
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with basic_auth_server(tmp_path_factory.mktemp("auth-server")) as (uri, as_user):
        as_user("admin")
        names = set_up(uri, MODEL, PASSWORDS)
        yield uri, lambda account: as_user(names[account], PASSWORDS[account]), names


@pytest.fixture(scope="module")
def candidate(server, digits_folder: Path) -> dict:
    uri, as_account, names = server
    as_account("pipeline")
    req = ErasureRequest.model_validate(
        merge(
            yaml.safe_load(EXAMPLE.read_text()),
            {
                "request": {"id": "REQ-S1", "requester": names["requester"]},
                "registry": {"model_name": MODEL, "approval": "required", "require_authentication": True},
                "tracking": {"uri": uri},
            },
        )
    )
    gates = {
        "passed": True,
        "gates": [{"gate": "forgotten_accuracy_max", "value": 0.0, "threshold": 0.2, "passed": True}],
    }
    with mlflow_tracking(uri):
        mlflow.set_experiment("signoff")
        with mlflow.start_run() as run:
            return promote_model(
                req,
                digits_folder / MODEL_DIR,
                "sha-base",
                {"forget_sha256": "f", "retain_sha256": "r"},
                gates,
                [],
                {"code_version": "test", "pipeline_run_id": "p", "mlflow_run_id": run.info.run_id},
            )


def decide(capsys, uri: str, *args: str) -> tuple[int, str]:
    code = cli([*args, "--tracking-uri", uri])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_only_the_reviewer_puts_a_candidate_into_service(server, candidate: dict, tmp_path: Path, capsys) -> None:
    uri, as_account, names = server
    assert (candidate["model_name"], candidate["alias"], candidate["registered_by"]) == (
        f"{MODEL}-candidates",
        "candidate",
        names["pipeline"],
    )
    client = MlflowClient(tracking_uri=uri)

    as_account("requester")  # refused by identity: the server says who is calling, no flag can change it
    code, out = decide(capsys, uri, "request", "approve", "REQ-S1")
    assert code == 2 and "four eyes" in out and names["requester"] in out, out
    code, out = decide(capsys, uri, "request", "approve", "REQ-S1", "--reviewer", names["reviewer"])
    assert code == 2 and "is not the user the tracking server authenticated" in out, out
    as_account("pipeline")
    code, out = decide(capsys, uri, "request", "approve", "REQ-S1")
    assert code == 2 and "registered the candidate" in out, out
    as_account("serving")  # not the requester, but the server refuses it: one line naming the permission
    code, out = decide(capsys, uri, "request", "approve", "REQ-S1")
    assert code == 2 and "refused erasediff-serving permission" in out and "needs EDIT" in out, out
    assert out.count("\n") == 1 and "Traceback" not in out

    as_account("reviewer")
    code, out = decide(capsys, uri, "request", "approve", "REQ-S1", "--comment", "grids checked")
    assert code == 0 and f"approved by {names['reviewer']}" in out, out
    champion = client.get_model_version_by_alias(MODEL, "champion")
    source = client.get_model_version(f"{MODEL}-candidates", str(candidate["version"]))
    assert {k: champion.tags.get(k) for k in LINEAGE} == {k: source.tags.get(k) for k in LINEAGE}
    assert champion.tags["review.reviewer"] == names["reviewer"] and json.loads(champion.tags["gate_report"])["passed"]

    for account in ("requester", "pipeline"):  # plain MLflow, past our tool: the server itself says no
        as_account(account)
        with pytest.raises(MlflowException) as denied:
            client.set_registered_model_alias(MODEL, "champion", champion.version)
        assert denied.value.error_code == "PERMISSION_DENIED" and "403" in str(denied.value)
        with pytest.raises(MlflowException, match="403"):
            client.set_registered_model_tag(MODEL, "audit.000001", "{}")

    as_account("serving")
    with mlflow_tracking(uri):
        folder = registered_model_folder(f"models:/{MODEL}@champion", tmp_path / "served")
    assert folder_hash(folder) == champion.tags["storage.folder_sha256"]
    with pytest.raises(MlflowException, match="403"):
        client.set_registered_model_alias(MODEL, "champion", champion.version)

    as_account("reviewer")
    code, out = decide(capsys, uri, "audit", MODEL, "--verify")
    assert code == 0 and f"{MODEL}: audit log verified" in out and f"{MODEL}-candidates: audit log verified" in out, out
    code, out = decide(capsys, uri, "audit", MODEL, "--log")
    assert f"approve            @champion   None -> {champion.version} by {names['reviewer']}" in out, out


def test_a_reader_can_neither_create_nor_hold_the_lock(server) -> None:
    uri, as_account, _ = server
    client = MlflowClient(tracking_uri=uri)
    as_account("requester")
    with pytest.raises(MlflowException, match="RESOURCE_ALREADY_EXISTS|already exists"):
        client.create_registered_model(f"{MODEL}.promotion-lock", tags={"acquired": "0"})
    from mlflow_adapters.promotion_lock import promotion_lock

    with pytest.raises(Exception, match="refused erasediff-requester permission .* needs EDIT"):
        with promotion_lock(client, MODEL, "REQ-squat", wait_s=1.0):
            pass


def test_an_unauthenticated_store_records_decisions_as_such_and_can_be_demanded(tmp_path: Path) -> None:
    from mlflow_adapters.identity import checked_identity, who_am_i

    sqlite = f"sqlite:///{tmp_path / 'mlflow.db'}"
    identity = who_am_i(sqlite)
    assert not identity.authenticated and identity.recorded("bob") == "unauthenticated (typed: bob)"
    req = ErasureRequest.model_validate(
        merge(yaml.safe_load(EXAMPLE.read_text()), {"registry": {"require_authentication": True}})
    )
    with pytest.raises(Exception, match="does not authenticate its users"):
        checked_identity(req, sqlite)
