"""MLflow logging the steps share: metric series in batches, JSON and files under a folder, the work folder."""

import os
import time
from collections.abc import Iterable
from pathlib import Path

import mlflow
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from erasediff.unlearn import StepMetrics

WORK_ENV = "ERASEDIFF_HOME"


def work_folder() -> Path:
    """Where state that outlives a step lives (resumable checkpoints): $ERASEDIFF_HOME, else ./.erasediff."""
    return Path(os.environ.get(WORK_ENV, ".erasediff")).resolve()


class MetricSeries:
    """Per-step unlearning metrics as MLflow metric series, sent in batches (one call per `every` steps)."""

    def __init__(self, prefix: str = "unlearn", every: int = 25) -> None:
        self.prefix, self.every, self.pending = prefix, every, []
        self.run_id = mlflow.active_run().info.run_id

    def __call__(self, metrics: StepMetrics) -> None:
        stamp = int(time.time() * 1000)
        self.pending += [Metric(f"{self.prefix}.{k}", float(v), stamp, metrics.step) for k, v in metrics.as_dict().items() if k != "step"]
        if metrics.step % self.every == 0:
            self.flush()

    def flush(self) -> None:
        client = MlflowClient()
        for start in range(0, len(self.pending), 1000):
            client.log_batch(self.run_id, metrics=self.pending[start:start + 1000])
        self.pending = []


def log_metrics(metrics: dict[str, float], prefix: str) -> None:
    mlflow.log_metrics({f"{prefix}.{k}": float(v) for k, v in metrics.items() if v is not None})


def log_files(paths: Iterable[Path], artifact_path: str) -> None:
    for path in paths:
        mlflow.log_artifact(str(path), artifact_path)
