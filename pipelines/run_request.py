"""Run one erasure request on the embedded default (or the configured MLflow server) and report how it ended.

Exit status: 0 promoted (or already promoted earlier: nothing new is registered), 1 gated out (the gate
report is printed), 2 bad input or a failed step (curation, unlearning, ...), with one `error:` line.
"""

import argparse
import copy
import os
import sys
from pathlib import Path

from erasediff.util.exits import DONE as PROMOTED
from erasediff.util.exits import FAILED, GATED_OUT
from erasediff.util.offline import go_offline


def tracking_uri(configured: str | None, workdir: Path) -> str:
    """Request's URI, else $MLFLOW_TRACKING_URI, else a SQLite store in the work folder (never a file: store)."""
    from erasediff.request.schema import check_tracking_uri
    from erasediff.util.errors import ErasediffError

    uri = configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{workdir / 'mlflow.db'}"
    try:
        return check_tracking_uri(uri)
    except ValueError as exc:
        raise ErasediffError(str(exc)) from None


def run_prefix(request_id: str) -> str:
    """Every pipeline run of a request is named `erasure-<id>-<date>-<time>` (how `request status` finds them)."""
    return f"erasure-{request_id}-"


def zenml_run_config(request) -> dict:
    """The request's ZenML run configuration: what `run_request` passes to the pipeline, and what
    `erasediff request zenml-config` writes for `zenml pipeline run ... -c`."""
    from erasediff.util.code_version import code_version

    rid = request.request.id
    return {
        "run_name": f"{run_prefix(rid)}{{date}}-{{time}}",
        "parameters": {"request": request.as_params()},
        "settings": {  # the launcher's code version on every run; steps in an image record the image's (baked) one
            "experiment_tracker": {
                "experiment_name": request.tracking.experiment,
                "tags": {"request_id": rid, "code_version": code_version()},
            }
        },
    }


# The steps of pipelines.erasure.erasure_pipeline, each of which takes the request (checked against a snapshot in
# tests).
REQUEST_STEPS = ("load_base_model", "curate_sets", "unlearn_model", "evaluate_models", "gate", "promote", "report")


def zenml_snapshot_run_config(request) -> dict:
    """The request as a run configuration for a snapshot (`zenml pipeline snapshot run NAME -c`, or the body's
    `run_configuration` of ZenML's `POST /api/v1/pipeline_snapshots/{id}/runs`). ZenML refuses pipeline parameters
    when a server runs a static pipeline, so the request goes to every step as a step parameter. ZenML merges
    these into the snapshot's key by key: every field is written out, so nothing of the snapshot's request survives."""
    config = zenml_run_config(request)
    parameters = config.pop("parameters")
    return {
        **config,
        "steps": {name: {"parameters": copy.deepcopy(parameters)} for name in REQUEST_STEPS},
    }  # copies: no YAML anchors


def failure(run) -> tuple[str, str, str]:
    """(step, exception class path, one-line message) of the run's failed step, from ZenML's own record."""
    for name, step in run.steps.items():
        if step.status.value == "failed":
            info = step.exception_info
            last = info.traceback.strip().splitlines()[-1] if info and info.traceback else "unknown error"
            source, _, message = last.partition(": ")
            return name, (info.source if info and info.source else source), message or last
    return "?", "", f"pipeline run {run.name} ended {run.status.value}"


def _gate_table(run) -> str:
    from erasediff.request.gates import GateReport

    step = run.steps.get("gate")
    if step is None or "gate_report" not in step.outputs:
        return "(no gate report was written)"
    return GateReport.from_dict(step.outputs["gate_report"][0].load()).table()


def run_request(
    request_path: Path,
    workdir: Path,
    stack: str | None = None,
    run_config: Path | None = None,
    refuse_promoted: bool = False,
    verbose: bool = False,
) -> int:
    """Run the pipeline for one request; an already promoted id is a no-op (0), or refused (2) with `refuse_promoted`.

    One run per request id at a time in a work folder: a second start is refused at once, naming the holder."""
    from erasediff.request.schema import load_request
    from erasediff.util.errors import ErasediffError
    from erasediff.util.locks import file_lock
    from pipelines.console import quiet_console

    request = load_request(request_path)
    if run_config is not None and not run_config.is_file():
        raise ErasediffError(f"run config not found: {run_config}")
    quiet_console(verbose)
    with file_lock(
        request_lock(workdir, request.request.id), f"request {request.request.id} is already running: its lock"
    ):
        return _run_locked(request, workdir, stack, run_config, refuse_promoted)


def request_lock(workdir: Path, request_id: str) -> Path:
    """Held by the process running the request, for as long as it runs (how `request status` tells a killed run)."""
    return workdir / "locks" / f"request-{request_id}.lock"


def _open_stores(request, workdir: Path, stack: str | None) -> str:
    """The tracking URI, once the MLflow store and the ZenML stack exist. Two requests starting together on a fresh work
    folder would race to create both stores' tables, so this part runs one process at a time."""
    from erasediff.util.locks import file_lock
    from mlflow_adapters.identity import checked_identity
    from mlflow_adapters.store import open_experiment
    from pipelines.stacks.select import ensure_local_stack, use_stack

    with file_lock(workdir / "locks" / "stores.lock", "the work folder's store set-up", wait_s=300):
        stack_uri = use_stack(stack) if stack else None
        uri = request.tracking.uri or stack_uri or tracking_uri(None, workdir)
        open_experiment(uri, request.tracking.experiment, workdir / "mlartifacts")
        checked_identity(request, uri)
        if stack is None:
            ensure_local_stack(uri)
    return uri


def configured_pipeline(request, run_config: Path | None):
    """The erasure pipeline as the runner starts it: the run name, the MLflow tracker's tags, the run configuration
    (image, placement) and, for a stack that builds an image from deploy/Dockerfile, the launcher's code version as
    the `CODE_VERSION` build argument, so the image records the commit it was built from (ZenML merges these
    settings into the run configuration's `docker` block)."""
    from zenml.config import DockerSettings
    from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import MLFlowExperimentTrackerSettings

    from erasediff.util.code_version import code_version
    from pipelines.erasure import erasure_pipeline

    options = zenml_run_config(request)
    build = {"build_options": {"build_args": {"CODE_VERSION": code_version()}}}
    return erasure_pipeline.with_options(
        config_path=str(run_config) if run_config else None,
        run_name=options["run_name"],
        settings={
            "experiment_tracker": MLFlowExperimentTrackerSettings(**options["settings"]["experiment_tracker"]),
            "docker": DockerSettings(build_config=build),
        },
    )


def _run_locked(request, workdir: Path, stack: str | None, run_config: Path | None, refuse_promoted: bool) -> int:
    from mlflow.tracking import MlflowClient

    from erasediff.util.errors import ErasediffError
    from erasediff.util.workdir import run_scratch
    from mlflow_adapters.registry import promoted_version
    from mlflow_adapters.tracking import close_interrupted_runs, mlflow_tracking

    uri = _open_stores(request, workdir, stack)
    name, rid = request.registry.model_name, request.request.id
    if uri.startswith(
        "sqlite:"
    ):  # this process holds the request's lock, so a run of it still marked running here was killed
        close_interrupted_runs(MlflowClient(tracking_uri=uri), request.tracking.experiment, rid)
    if (existing := promoted_version(MlflowClient(tracking_uri=uri), name, rid)) is not None:
        message = (
            f"request {rid} is already promoted as {name} version {existing.version} "
            f"(models:/{name}/{existing.version}); use a new request id to erase again"
        )
        if refuse_promoted:
            raise ErasediffError(f"refused: {message}")
        print(f"{message}; nothing to do")
        return PROMOTED

    from zenml.client import Client

    from pipelines.notify import completed_outcome
    from steps.report import gated_out_detail

    pipeline = configured_pipeline(request, run_config)

    def latest():
        runs = (
            Client()
            .list_pipeline_runs(name=f"startswith:{run_prefix(rid)}", sort_by="desc:created", size=1, hydrate=True)
            .items
        )
        return runs[0] if runs else None

    before = latest()
    try:
        with run_scratch(workdir), mlflow_tracking(uri):  # scratch goes when the run ends, however it ends
            pipeline(request=request)
    except Exception:
        run = latest()
        if run is None or (before is not None and run.id == before.id):
            raise  # the pipeline never started: not a step failure
    run = latest()
    if (message := gated_out_detail(run)) is not None:
        print(_gate_table(run), file=sys.stderr)
        _ended(run, request, uri, "gated_out", message)
        print(f"error: {message}", file=sys.stderr)
        return GATED_OUT
    if run.status.value == "completed":
        print(f"pipeline run {run.name} completed; MLflow: {uri}")
        _ended(run, request, uri, *completed_outcome(uri, rid))
        return PROMOTED
    step, _, message = failure(run)
    _purge_failed(run)
    _ended(run, request, uri, "failed", f"step {step} failed: {message}")
    print(f"error: step {step} failed: {message}", file=sys.stderr)
    return FAILED


def _purge_failed(run) -> None:
    """A failed run never reached its report step: its curated sets (the forget set) leave the artifact store here."""
    from zenml import log_metadata

    from steps.curate_sets import CURATED_SETS, purge_curated_sets

    step = run.steps.get("curate_sets")
    if step is not None and step.outputs.get("curated_sets"):
        found = purge_curated_sets(step.outputs["curated_sets"][0].uri)
        log_metadata(metadata={CURATED_SETS: found}, run_id_name_or_prefix=run.id)


def _ended(run, request, uri: str, event: str, verdict: str) -> None:
    """How the run ended, in its ZenML metadata (the dashboard shows a verdict, not only a status), and told to whoever
    the request's `notify:` names (pipelines/notify.py)."""
    from zenml import log_metadata

    from pipelines.notify import notify_run_outcome
    from steps.report import verdict_metadata

    delivered = notify_run_outcome(request, uri, event, verdict)
    found = verdict_metadata(event, verdict)
    log_metadata(
        metadata={**found, **({f"notify.{event}": delivered} if delivered else {})}, run_id_name_or_prefix=run.id
    )


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request", type=Path, help="erasure request YAML (see configs/request_digits_forget_3.yaml)")
    parser.add_argument(
        "--workdir",
        type=Path,
        help="ZenML store, MLflow store and checkpoints (default $ERASEDIFF_HOME or ./.erasediff)",
    )
    parser.add_argument(
        "--stack",
        help="a registered ZenML stack (k8s-gpu, kubeflow-gpu: deploy/README.md); default: the embedded local stack",
    )
    parser.add_argument(
        "--run-config", type=Path, help="ZenML run configuration: image and per-step placement (configs/k8s_gpu.yaml)"
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show everything ZenML and MLflow print, tracebacks included (also ERASEDIFF_DEBUG=1)",
    )


def prepare_workdir(workdir: Path | None, own_store: bool) -> Path:
    """The work folder (checkpoints, and the local MLflow store); with `own_store`, also the ZenML store there
    (a named stack or `--remote` uses the ZenML server the operator is logged in to instead)."""
    from erasediff.util.errors import ErasediffError
    from erasediff.util.workdir import WORK_ENV

    workdir = (workdir or Path(os.environ.get(WORK_ENV, ".erasediff"))).resolve()
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ErasediffError(f"work folder {workdir} cannot be created: {exc.strerror}") from None
    os.environ[WORK_ENV] = str(workdir)
    if own_store:
        os.environ.setdefault("ZENML_CONFIG_PATH", str(workdir / "zenml"))
    return workdir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="run.py", description="Run an erasure request through the ZenML pipeline.")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    go_offline()
    from erasediff.util.exits import one_error_line

    with one_error_line() as outcome:
        outcome.code = run_request(
            args.request,
            prepare_workdir(args.workdir, own_store=args.stack is None),
            args.stack,
            args.run_config,
            verbose=args.verbose,
        )
    return outcome.code
