"""`erasediff audit MODEL --verify` on a real SQLite MLflow registry: it passes on an honest history and fails, naming
the entry or the version, on each tampering an editor of the registry could do with plain MLflow; a malformed entry
blocks no decision; a changed cache is rebuilt, never served; records refuse forged text.

One automatic promotion (version 1) and one reviewed request (candidate, approval: version 2 of the model) build
the history; each tampering is undone before the next, and the history verifies again after each undo.
"""

import json
import re
import shutil
from pathlib import Path

import mlflow
import pytest
import yaml
from conftest import merge, mlflow_tracking
from mlflow.tracking import MlflowClient
from pydantic import ValidationError

from erasediff.request.schema import ErasureRequest
from erasediff.util.cache import default_cache_root
from mlflow_adapters.audit import AUDIT_EXPERIMENT, AUDIT_TAG, read_log
from mlflow_adapters.blob_store import PARTS_TAG
from mlflow_adapters.promotion import promote_model
from mlflow_adapters.registry import earlier_erasures
from mlflow_adapters.store import artifacts_beside, open_experiment
from pipelines.cli import main as cli

pytestmark = pytest.mark.integration  # registers two pyfunc versions and rebuilds them (about a minute)

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"
MODEL = "erasediff-audit-test"
PASSED = {"passed": True, "gates": [{"gate": "forgotten_accuracy_max", "value": 0.0, "threshold": 0.2, "passed": True}]}


def request(rid: str, approval: str) -> ErasureRequest:
    return ErasureRequest.model_validate(
        merge(
            yaml.safe_load(EXAMPLE.read_text()),
            {
                "request": {"id": rid, "requester": "alice@example.com"},
                "registry": {"model_name": MODEL, "approval": approval},
            },
        )
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory, digits_folder: Path) -> str:
    from erasediff.defaults.digits_models import MODEL_DIR

    uri = f"sqlite:///{tmp_path_factory.mktemp('audit') / 'mlflow.db'}"
    with mlflow_tracking(uri):
        open_experiment(uri, "audit", artifacts_beside(uri))
        mlflow.set_experiment("audit")
        for rid, approval in (("REQ-1", "automatic"), ("REQ-2", "required")):
            with mlflow.start_run() as run:
                promote_model(
                    request(rid, approval),
                    digits_folder / MODEL_DIR,
                    "sha-base",
                    {"forget_sha256": "f", "retain_sha256": "r"},
                    PASSED,
                    earlier_erasures(MlflowClient(), MODEL, rid),  # what the evaluation would have re-checked
                    {"code_version": "test", "pipeline_run_id": "p", "mlflow_run_id": run.info.run_id},
                )
    assert cli(["request", "approve", "REQ-2", "--reviewer", "bob@example.com", "--tracking-uri", uri]) == 0
    return uri


def verify(capsys, uri: str) -> tuple[int, str]:
    code = cli(["audit", MODEL, "--verify", "--tracking-uri", uri])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_an_honest_history_verifies(store: str, capsys) -> None:
    code, out = verify(capsys, store)
    assert code == 0 and f"{MODEL}: audit log verified" in out and f"{MODEL}-candidates: audit log verified" in out, out
    client = MlflowClient(tracking_uri=store)
    log = read_log(client, MODEL)
    assert [(e.action, e.to_version) for e in log] == [("promote", 1), ("approve", 2)]
    assert log[0].actor == "unauthenticated" and log[1].actor == "unauthenticated (typed: bob@example.com)"
    # the log's second copy lies with the store's other artifacts, not in whatever directory the command ran from
    audit = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    assert audit.artifact_location == artifacts_beside(store).as_uri(), audit.artifact_location


@pytest.mark.parametrize("tamper", ["edit", "delete", "reorder"])
def test_an_edited_deleted_or_reordered_entry_is_named(store: str, capsys, tamper: str) -> None:
    client = MlflowClient(tracking_uri=store)
    tags = client.get_registered_model(MODEL).tags
    first, second = tags["audit.000001"], tags["audit.000002"]
    if tamper == "edit":
        client.set_registered_model_tag(MODEL, "audit.000001", first.replace('"promote"', '"approve"'))
        named = "audit.000001 differs from its copy"
    elif tamper == "delete":
        client.delete_registered_model_tag(MODEL, "audit.000001")
        named = "audit.000001 is missing (deleted)"
    else:
        client.set_registered_model_tag(MODEL, "audit.000001", second)
        client.set_registered_model_tag(MODEL, "audit.000002", first)
        named = "audit.000001 differs from its copy"
    try:
        code, out = verify(capsys, store)
        assert code == 1 and named in out, out
    finally:
        client.set_registered_model_tag(MODEL, "audit.000001", first)
        client.set_registered_model_tag(MODEL, "audit.000002", second)
    assert verify(capsys, store)[0] == 0


def test_a_champion_moved_with_plain_mlflow_is_caught_and_status_warns(store: str, capsys) -> None:
    client = MlflowClient(tracking_uri=store)
    v1 = client.get_model_version(MODEL, "1")
    with mlflow_tracking(store):  # the version's models:/ source resolves through the global tracking URI
        extra = client.create_model_version(MODEL, v1.source, v1.run_id, tags=v1.tags)
    client.set_registered_model_alias(MODEL, "champion", extra.version)
    try:
        code, out = verify(capsys, store)
        assert code == 1 and f"@champion is on version {extra.version} but the log's last move put it on 2" in out, out
        assert cli(["audit", MODEL, "--tracking-uri", store]) == 0  # the plain answer warns too
        assert "moved outside the tool" in capsys.readouterr().err
        assert (
            cli(["request", "status", "REQ-1", "--tracking-uri", store, "--workdir", str(Path(store[10:]).parent)]) == 0
        )
        assert "moved outside the tool" in capsys.readouterr().out
    finally:
        client.set_registered_model_alias(MODEL, "champion", "2")
        client.delete_model_version(MODEL, extra.version)
    assert verify(capsys, store)[0] == 0


def test_a_corrupted_part_is_caught_and_a_changed_cache_is_rebuilt(store: str, capsys, tmp_path: Path) -> None:
    client = MlflowClient(tracking_uri=store)
    runs = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"tags.`{PARTS_TAG}` = '{MODEL}-candidates'",
    )
    parts = Path(runs[0].info.artifact_uri.removeprefix("file://")) / "parts"
    victim = max(parts.iterdir(), key=lambda p: p.stat().st_size)  # the weights
    original = victim.read_bytes()
    cache = default_cache_root()
    victim.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    shutil.rmtree(cache / "parts", ignore_errors=True)
    shutil.rmtree(cache / "materialized", ignore_errors=True)
    try:
        code, out = verify(capsys, store)
        assert code == 1 and "version 2 (@champion) does not rebuild" in out and "corrupt" in out, out
    finally:
        victim.write_bytes(original)
    assert verify(capsys, store)[0] == 0

    # The local cache, edited in place: served as is before; now rebuilt, and the hash printed is the recorded one.
    built = next(p for p in (cache / "materialized").iterdir() if p.is_dir())
    weights = max((p for p in built.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    assert cli(["materialize", f"models:/{MODEL}@champion", str(tmp_path / "out"), "--tracking-uri", store]) == 0
    recorded = client.get_model_version(MODEL, "2").tags["storage.folder_sha256"]
    assert f"sha256 {recorded}, as recorded" in capsys.readouterr().out


def test_an_entry_written_around_the_tool_cannot_forge_lines_of_the_log(store: str, capsys) -> None:
    client = MlflowClient(tracking_uri=store)
    entry = json.loads(client.get_registered_model(MODEL).tags["audit.000002"])
    forged = json.dumps({**entry, "seq": 3, "reason": "ok\nerror: forged line", "actor": "x\n2026 approve by admin"})
    client.set_registered_model_tag(MODEL, "audit.000003", forged)
    try:
        code = cli(["audit", MODEL, "--log", "--tracking-uri", store])
        out = capsys.readouterr().out.splitlines()
        assert code == 0 and len(out) == 3 and not [line for line in out if line.startswith(("error:", "2026"))], out
        assert verify(capsys, store)[0] == 1  # and the chain says it was not written by the tool
    finally:
        client.delete_registered_model_tag(MODEL, "audit.000003")


def test_a_malformed_entry_is_named_and_blocks_no_decision(store: str, capsys) -> None:
    client = MlflowClient(tracking_uri=store)
    client.set_registered_model_tag(MODEL, "audit.000003", "{not json")
    try:
        code, out = verify(capsys, store)
        assert code == 1 and "audit.000003 is not an audit entry" in out, out
        code = cli(
            [
                "request",
                "rollback",
                MODEL,
                "--to",
                "1",
                "--reviewer",
                "bob@example.com",
                "--reason",
                "test",
                "--force",
                "--tracking-uri",
                store,
            ]
        )
        assert code == 0, capsys.readouterr().err
        assert read_log(client, MODEL)[-1].action == "rollback (forced)"
        code = cli(["audit", MODEL, "--tracking-uri", store])
        out = capsys.readouterr()
        assert code == 0 and "audit.000003 is not an audit entry" in out.err and "version 1" in out.out
    finally:
        client.delete_registered_model_tag(MODEL, "audit.000003")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("requester", "alice@example.com\naudit: forged", "control or invisible character U+000A"),
        ("requester", "  ", "is empty"),
        ("requester", "\u0430lice@example.com", "mixes scripts"),  # Cyrillic a
        ("reason", "gdpr\u202eevil", "U+202E"),
    ],
)
def test_records_refuse_forged_text_at_validation(field: str, value: str, message: str) -> None:
    raw = merge(yaml.safe_load(EXAMPLE.read_text()), {"request": {field: value}})
    with pytest.raises(ValidationError, match=re.escape(message)):
        ErasureRequest.model_validate(raw)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reviewer", ""], "is empty"),
        (["--reviewer", "bob\nerror: forged"], "U+000A"),
        (["--reviewer", "\u0430lice@example.com"], "mixes scripts"),
        (["--reviewer", "bob", "--comment", "ok\nforged line"], "--comment holds the control"),
    ],
)
def test_the_command_line_refuses_forged_text(tmp_path: Path, capsys, args: list[str], message: str) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli(["request", "approve", "REQ-X", *args, "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and err.count("\n") == 1, err


def test_audit_log_copies_live_in_the_audit_run(store: str) -> None:
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    (run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`{AUDIT_TAG}` = '{MODEL}'")
    names = sorted(Path(f.path).name for f in client.list_artifacts(run.info.run_id, "audit"))
    assert names[:2] == ["000001.json", "000002.json"]
    assert json.loads(client.get_registered_model(MODEL).tags["audit.000001"])["prev"] == ""
