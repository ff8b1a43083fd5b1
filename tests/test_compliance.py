"""The compliance workflow end to end, on ZenML's local orchestrator with a temporary ZenML store and MLflow SQLite:

- two digits requests in sequence (forget 3, then forget 5 starting from @champion): the second champion has
  both classes forgotten; a third request whose retain set re-teaches 3 and 5 is gated out by the
  earlier-erasures check;
- `erasediff request submit` refuses a promoted id; `erasediff request status` reports promoted, gated out and
  curation-failed (a request triggered through `zenml pipeline run` with `erasediff request zenml-config`);
- the erasure report opens in headless Chromium and renders; its JSON twin matches the MLflow records; the
  promoted folder carries a model card.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import WEBHOOK_ENV, merge, mlflow_tracking
from PIL import Image
from test_pipeline import digits_folder, write_request

from erasediff.evaluation.class_accuracy import class_scores
from erasediff.evaluation.metric_settings import EvalSettings
from erasediff.models.class_model import load_class_model
from pipelines.cli import main as erasediff

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

MODEL, ROOT = "erasediff-seq", Path(__file__).parents[1]
CHAMPION = f"models:/{MODEL}@champion"
# FAST's evaluation (20 samples per class, 10 steps) makes FID noisy from one model to the next: a looser FID gate.
REGISTRY = {
    "registry": {"model_name": MODEL},
    "gates": {"fid_increase_max": 0.5},
    "unlearning": {"recipe": "paper", "advanced": {"steps": 60}},
    "checkpoint_every": 30,
    "notify": {"webhook_env": WEBHOOK_ENV},  # a local receiver (conftest.webhook) hears every outcome
}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("compliance-work")


@pytest.fixture(scope="module")
def requests(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("requests")


def submit(path: Path, work: Path, capsys) -> tuple[int, str]:
    rc = erasediff(["request", "submit", str(path), "--workdir", str(work)])
    captured = capsys.readouterr()
    return rc, captured.out + captured.err


def status(request_id: str, work: Path, capsys) -> dict:
    rc = erasediff(["request", "status", request_id, "--workdir", str(work), "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    return {"rc": rc, **json.loads(out)}


@pytest.fixture(scope="module")
def sequence(work: Path, requests: Path, tmp_path_factory, webhook: list[dict]) -> dict:
    """A: forget 3 from the embedded default. B: forget 5 from @champion. C: forget 8 from @champion, retaining only 3s
    and 5s."""
    out = {}
    for rid, overrides in [
        ("REQ-A", {"target": {"classes": [3]}}),
        ("REQ-B", {"target": {"classes": [5]}, "base_model": CHAMPION}),
        (
            "REQ-C",
            {
                "target": {"classes": [8]},
                "base_model": CHAMPION,
                "curation": {"retain_earlier_erasures": True},
                "unlearning": {"advanced": {"steps": 30}},
                "data": {"retain": str(digits_folder(tmp_path_factory.mktemp("undo") / "retain", [3, 5], 150))},
            },
        ),
    ]:
        path = write_request(requests, rid, **merge(REGISTRY, overrides))
        out[rid] = erasediff(["request", "submit", str(path), "--workdir", str(work)])
    return out


def test_promotions_and_a_gated_out_request_are_told_with_the_report(sequence: dict, webhook: list[dict]) -> None:
    told = {(m["request_id"], m["event"]): m for m in webhook}
    assert set(told) == {("REQ-A", "promoted"), ("REQ-B", "promoted"), ("REQ-C", "gated_out")}
    assert told[("REQ-A", "promoted")]["verdict"].startswith(f"promoted: registered as {MODEL} version 1")
    gated = told[("REQ-C", "gated_out")]
    assert "earlier_erasures_accuracy_max" in gated["verdict"] and gated["report"].startswith("runs:/")
    assert all(m["report"].endswith("/report/erasure_report.html") for m in webhook)


def test_zenml_holds_each_runs_verdict_report_and_gate_table(sequence: dict) -> None:
    """In ZenML's own records (what its dashboard shows): the gated-out run completed, not failed, with its verdict as
    run metadata, the erasure report as an HTML artifact and the gates as a Markdown one. ZenML model versions are
    the requests that passed, named after them, with the gate values as metadata and the report linked; the gated-out
    request has none."""
    from zenml.client import Client

    client = Client()
    run = client.list_pipeline_runs(name="startswith:erasure-REQ-C-", hydrate=True).items[0]
    assert run.status.value == "completed" and run.run_metadata["erasediff.verdict"] == "gated_out"
    promoted = client.list_pipeline_runs(name="startswith:erasure-REQ-A-", hydrate=True).items[0]
    assert promoted.run_metadata["erasediff.verdict"] == "promoted"
    versions = {v.name: v for v in client.list_model_versions(model_name_or_id=MODEL, hydrate=True).items}
    assert set(versions) == {"REQ-A", "REQ-B"}
    gates = versions["REQ-B"].run_metadata["gates"]
    assert "earlier_erasures_accuracy_max" in gates and all(isinstance(v, float) for v in gates.values()), gates
    linked = {a.name for a in client.list_artifact_versions(model_version_id=versions["REQ-B"].id).items}
    assert {"erasure_report_html", "gate_report", "unlearned_model"} <= linked, linked
    assert "earlier_erasures_accuracy_max" in run.run_metadata["erasediff.verdict_detail"]
    reports = [v.load() for v in client.list_artifact_versions(name="erasure_report_html", hydrate=True).items]
    assert any("REQ-C" in str(r) and "<html" in str(r).lower() for r in reports)
    tables = [str(v.load()) for v in client.list_artifact_versions(name="gate_table", hydrate=True).items]
    assert any("| earlier_erasures_accuracy_max |" in t and "**FAIL**" in t for t in tables)


@pytest.fixture(scope="module")
def client(work: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")


def test_second_erasure_keeps_the_first_in_force(sequence: dict, client, digits_classifier, tmp_path: Path) -> None:
    from mlflow_adapters.registry import registered_model_folder

    assert sequence["REQ-A"] == 0 and sequence["REQ-B"] == 0
    champion = client.get_model_version_by_alias(MODEL, "champion")
    assert champion.tags["request_id"] == "REQ-B" and champion.tags["base_model"] == CHAMPION
    with mlflow_tracking(client.tracking_uri):
        folder = registered_model_folder(CHAMPION, tmp_path)
    beside = next(
        tmp_path.rglob("report/erasure_report.json")
    ).parent  # next to the model, in the registered version's artifacts
    assert json.loads((beside / "erasure_report.json").read_text())["outcome"]["version"] == int(champion.version)
    assert (beside / "erasure_report.html").is_file()
    model = load_class_model(folder)
    scores = class_scores(model, digits_classifier, EvalSettings(samples_per_class=20, steps=20), progress=False)
    assert scores[3].accuracy <= 0.2 and scores[5].accuracy <= 0.2, (scores[3].accuracy, scores[5].accuracy)
    assert np.mean([scores[c].accuracy for c in (0, 1, 2, 4, 6, 7, 8, 9)]) >= 0.8
    card = (folder / "README.md").read_text()
    assert "classes [5] erased" in card and "| REQ-A | 1 | [3] |" in card and "earlier_erasures_accuracy_max" in card


def test_undoing_an_earlier_erasure_is_gated_out(sequence: dict, client, work: Path, capsys) -> None:
    """Exit 1, the registry untouched (versions and alias), the promote step declined and the report step recorded the
    verdict."""
    from zenml.client import Client

    assert sequence["REQ-C"] == 1
    assert sorted(int(v.version) for v in client.search_model_versions(f"name = '{MODEL}'")) == [1, 2]
    assert client.get_model_version_by_alias(MODEL, "champion").tags["request_id"] == "REQ-B"
    state = status("REQ-C", work, capsys)
    assert state["state"] == "gated out" and "earlier_erasures_accuracy_max" in state["detail"], state
    steps = Client().get_pipeline_run(state["pipeline_run"]).steps
    assert steps["promote"].status.value == "completed" and steps["report"].status.value == "completed"
    report = steps["gate"].outputs["gate_report"][0].load()
    assert {g["gate"]: g["passed"] for g in report["gates"]}["earlier_erasures_accuracy_max"] is False


def test_status_reports_promoted_gated_out_and_curation_failed(
    sequence: dict, client, work: Path, requests: Path, capsys
) -> None:
    a, b = status("REQ-A", work, capsys), status("REQ-B", work, capsys)
    assert (a["state"], a["registry"]["version"], a["registry"]["aliases"]) == ("promoted", 1, [])
    assert (b["state"], b["registry"]["version"], b["registry"]["aliases"]) == ("promoted", 2, ["champion"])
    report = b["registry"]["report"]  # runs:/RUN/report/erasure_report.html, downloadable with the MLflow CLI or client
    run_id, path = report.removeprefix("runs:/").split("/", 1)
    assert path == "report/erasure_report.html" and path in {f.path for f in client.list_artifacts(run_id, "report")}
    assert status("REQ-NEVER", work, capsys)["rc"] == 2  # never 1: that means gated out

    # A ticketing system's path: ZenML's own CLI with the request as run configuration (fails at curation: too few
    # images).
    path = write_request(
        requests, "REQ-D", **merge(REGISTRY, {"target": {"classes": [6]}, "curation": {"min_forget": 100_000}})
    )
    assert erasediff(["request", "zenml-config", str(path)]) == 0
    (requests / "REQ-D.zenml.yaml").write_text(capsys.readouterr().out)
    from pipelines.stacks.select import ensure_local_stack

    ensure_local_stack(
        f"sqlite:///{work / 'mlflow.db'}"
    )  # the stack `request submit` used, active in this session's ZenML store
    temp = requests / "REQ-D.tmp"  # the process's temp folder: a step started outside run.py keeps its scratch there
    temp.mkdir()
    env = {**os.environ, "ERASEDIFF_HOME": str(work), "TMPDIR": str(temp)}
    done = subprocess.run(
        [
            str(Path(sys.executable).parent / "zenml"),
            "pipeline",
            "run",
            "pipelines.erasure.erasure_pipeline",
            "-c",
            str(requests / "REQ-D.zenml.yaml"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert done.returncode != 0
    assert not [
        p.name for p in temp.iterdir() if p.name.startswith("curated-")
    ]  # the failed step's scratch went with its process
    d = status("REQ-D", work, capsys)
    assert d["state"] == "failed" and d["detail"].startswith("at step curate_sets: curation failed"), d


def test_request_list_shows_every_request_with_its_state(sequence: dict, work: Path, capsys) -> None:
    assert erasediff(["request", "list", "--workdir", str(work), "--json"]) == 0
    states = {s["request_id"]: s["state"] for s in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert {k: states.get(k) for k in ("REQ-A", "REQ-B", "REQ-C")} == {
        "REQ-A": "promoted",
        "REQ-B": "promoted",
        "REQ-C": "gated out",
    }, states


def test_a_snapshot_run_takes_the_request_as_step_parameters(work: Path, requests: Path, capsys) -> None:
    """The ticketing path through ZenML's REST API: a named snapshot of the pipeline, run with another request
    (`erasediff request zenml-config --snapshot`). The snapshot is created on this local store and the run
    configuration goes through ZenML's own server-side checks and step-parameter merge; starting the run needs a
    ZenML server with a workload manager; ZenML refuses it on a local store (asserted)."""
    from zenml.client import Client
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.pipelines.run_utils import validate_run_config_is_runnable_from_server
    from zenml.utils import pydantic_utils

    from erasediff.request.schema import ErasureRequest, load_request
    from pipelines.erasure import erasure_pipeline
    from pipelines.stacks.select import ensure_local_stack

    template = write_request(
        requests, "REQ-T", **merge(REGISTRY, {"target": {"classes": [6]}, "request": {"legal_basis": "GDPR Art. 17"}})
    )
    assert erasediff(["request", "zenml-config", str(template)]) == 0
    (requests / "REQ-T.zenml.yaml").write_text(capsys.readouterr().out)
    ensure_local_stack(f"sqlite:///{work / 'mlflow.db'}")
    snapshot = erasure_pipeline.with_options(config_path=str(requests / "REQ-T.zenml.yaml")).create_snapshot(
        name="erasure-request"
    )
    capsys.readouterr()  # ZenML's log lines
    with pytest.raises(
        ValueError, match="Can't set pipeline parameters"
    ):  # why the plain run configuration cannot be used here
        validate_run_config_is_runnable_from_server(
            PipelineRunConfiguration.from_yaml(str(requests / "REQ-T.zenml.yaml")), is_dynamic=snapshot.is_dynamic
        )

    ticket = write_request(requests, "REQ-E", **merge(REGISTRY, {"target": {"classes": [7]}, "base_model": CHAMPION}))
    assert erasediff(["request", "zenml-config", "--snapshot", str(ticket)]) == 0
    config = PipelineRunConfiguration.model_validate(yaml.safe_load(capsys.readouterr().out))
    validate_run_config_is_runnable_from_server(config, is_dynamic=snapshot.is_dynamic)
    assert set(config.steps) == set(snapshot.step_configurations)
    for (
        name,
        step,
    ) in snapshot.step_configurations.items():  # as zen_server.pipeline_execution.utils merges a run's step updates
        update = config.steps[name].model_dump(exclude={"name"}, exclude_unset=True, exclude_none=True)
        merged = pydantic_utils.update_model(step.step_config_overrides, update)
        assert set(merged.parameters) == set(step.config.parameters) == {"request"}, name
        assert ErasureRequest.model_validate(merged.parameters["request"]) == load_request(ticket), (
            name
        )  # no GDPR left over from REQ-T
    with pytest.raises(TypeError, match="not connected to a ZenML Server"):
        Client().trigger_pipeline(snapshot_name_or_id=snapshot.id, run_configuration=config)


def test_submitting_a_promoted_request_again_is_refused(sequence: dict, work: Path, requests: Path, capsys) -> None:
    rc, out = submit(requests / "REQ-A.yaml", work, capsys)
    assert rc == 2 and f"refused: request REQ-A is already promoted as {MODEL} version 1 (models:/{MODEL}/1)" in out


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="Debian's chromium package is not installed (.ci/run installs it)"
)
def test_report_renders_in_chromium_and_its_json_matches_mlflow(sequence: dict, client, tmp_path: Path) -> None:
    version = client.get_model_version_by_alias(MODEL, "champion")
    run_id = version.tags["mlflow_run_id"]
    folder = Path(client.download_artifacts(run_id, "report", str(tmp_path)))
    facts = json.loads((folder / "erasure_report.json").read_text())
    run = client.get_run(run_id)
    for name, metrics in facts["evaluation"]["metrics"].items():
        for key, value in metrics.items():
            assert run.data.metrics[f"eval.{name}.{key}"] == pytest.approx(value), key
    assert {g["gate"]: g["value"] for g in facts["gates"]["gates"]} == pytest.approx(
        {k.removeprefix("gate."): v for k, v in run.data.metrics.items() if k.startswith("gate.")}
    )
    assert facts["outcome"]["version"] == int(version.version) and facts["outcome"]["alias"] == "champion"
    assert (
        facts["provenance"]["mlflow_run_id"] == run_id
        and facts["base_model_sha256"] == version.tags["base_model_sha256"]
    )
    assert [e["request_id"] for e in facts["earlier_erasures"]] == ["REQ-A"]

    shot = tmp_path / "report.png"
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            (folder / "erasure_report.html").as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.01, "the screenshot is blank"
    assert "ERR_" not in done.stderr and "Uncaught" not in done.stderr
