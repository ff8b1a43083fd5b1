"""MLflow logging the steps share: metric series in batches, metrics under a prefix, files under a folder."""

import os
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from erasediff.comparison.class_models import RESULTS_JSON, RESULTS_MD
from erasediff.curation.sets import SETS
from erasediff.method.loop import StepMetrics
from erasediff.request.curate import CuratedSets, source_label
from erasediff.request.evaluate import EARLIER
from erasediff.request.schema import ErasureRequest


class MetricSeries:
    """Per-step unlearning metrics as MLflow metric series, sent in batches (one call per `every` steps)."""

    def __init__(self, prefix: str = "unlearn", every: int = 25) -> None:
        self.prefix, self.every, self.pending = prefix, every, []
        self.run_id = mlflow.active_run().info.run_id

    def __call__(self, metrics: StepMetrics) -> None:
        stamp = int(time.time() * 1000)
        self.pending += [
            Metric(f"{self.prefix}.{k}", float(v), stamp, metrics.step)
            for k, v in metrics.as_dict().items()
            if k != "step"
        ]
        if metrics.step % self.every == 0:
            self.flush()

    def flush(self) -> None:
        client = MlflowClient()
        for start in range(0, len(self.pending), 1000):
            client.log_batch(self.run_id, metrics=self.pending[start : start + 1000])
        self.pending = []


def log_metrics(metrics: dict[str, float], prefix: str) -> None:
    mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in metrics.items() if v is not None})


def log_files(paths: Iterable[Path], artifact_path: str) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)


def log_curation(request: ErasureRequest, curated: CuratedSets) -> None:
    """The validation result, balance table and manifest as artifacts, each set as an MLflow dataset input
    (digest = its content hash), and whether curation passed."""
    log_files(curated.files, "curation")
    hashes = curated.summary()
    for name in SETS:
        part = curated.manifest[curated.manifest["set"] == name]
        dataset = mlflow.data.from_pandas(
            part,
            source=f"{source_label(request, name)}#{name}",
            name=f"{name}-set",
            digest=hashes[f"{name}_sha256"][:16],
        )
        mlflow.log_input(dataset, context=name)
    mlflow.set_tag("curation.passed", str(curated.report.success).lower())


def log_evaluation(results: dict, out: Path, rechecked: list[str]) -> None:
    """Both models' metrics (eval.original.*, eval.unlearned.*, and the earlier erasures' re-checks under .earlier.),
    the
    recovery attacks' success on original, gold and candidate (eval.attack.NAME.*),
    the deltas, the results files and grids; each re-checked earlier request's detail under evaluation/earlier/ID
    (its grids under .../grids)."""
    for name in ("original", "unlearned"):
        log_metrics(results["models"][name]["metrics"], f"eval.{name}")
        log_metrics(
            {
                f"{row['request_id']}.{row['metric']}": row[name]
                for row in results["earlier_checks"]
                if row[name] is not None
            },
            f"eval.{name}.{EARLIER}",
        )
    log_metrics(results["delta"], "eval.delta")
    log_metrics(
        {
            f"{attack}.{k}": v
            for attack, values in (results.get("attacks") or {}).items()
            for k, v in values.items()
            if k != "curve"  # every point of the grid is in results.json and the attack-curves plot
        },
        "eval.attack",
    )
    log_files([out / RESULTS_JSON, out / RESULTS_MD], "evaluation")
    log_files(sorted((out / "grids").glob("*.png")), "evaluation/grids")
    for request_id in rechecked:  # laid out as under `out`: the report reads these files back from the run
        detail = out / EARLIER / request_id
        log_files([detail / RESULTS_JSON, detail / RESULTS_MD], f"evaluation/{EARLIER}/{request_id}")
        log_files(sorted((detail / "grids").glob("*.png")), f"evaluation/{EARLIER}/{request_id}/grids")


def log_request_params(request: ErasureRequest) -> None:
    """The request's id, target, base model and every unlearning setting as run parameters."""
    t = request.target
    target = {"forget_classes": t.classes} if t.kind == "class" else {"concept": t.concept, "anchors": t.anchors}
    mlflow.log_params(
        {
            "request_id": request.request.id,
            **target,
            "base_model": request.base_model,
            **{f"unlearning.{k}": v for k, v in request.unlearning.model_dump(by_alias=True).items()},
        }
    )


def close_interrupted_runs(client: MlflowClient, experiment: str, request_id: str) -> list[str]:
    """End as KILLED the MLflow runs of `request_id` still marked RUNNING: their process died (call only while holding
    the request's lock on the store it alone uses). Returns their ids."""
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return []
    stale = client.search_runs(
        [found.experiment_id], f"tags.request_id = '{request_id}' and attributes.status = 'RUNNING'"
    )
    for run in stale:
        client.set_terminated(run.info.run_id, status="KILLED")
    return [run.info.run_id for run in stale]


@contextmanager
def mlflow_tracking(uri: str) -> Iterator[None]:
    """mlflow's global tracking URI for a block: set_tracking_uri (ZenML's tracker calls it too) also sets
    $MLFLOW_TRACKING_URI, which later requests in this process must not inherit."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(before or "")
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
