"""Step: materialise the forget/retain sets with a content-hash manifest and validate them with Great Expectations.

A failed suite stops the run here, listing the failing expectations; the full result is logged first.

The curated images reach the unlearn step through ZenML's artifact store, and leave it when the run ends
(`purge_curated_sets`: the report step, or the runner after a failed run): the forget set is the very data a
deletion request is about, so no store keeps it past its run. The content-hash manifest and the validation stay
in the MLflow run as the record of what was forgotten.
"""

from pathlib import Path
from typing import Annotated

from mlflow.tracking import MlflowClient
from zenml import step
from zenml.io import fileio

from erasediff.request.curate import curate_request
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.registry import earlier_classes, earlier_erasures
from mlflow_adapters.step_folders import resolve
from mlflow_adapters.tracking import log_curation
from steps.request_parameter import RequestParameter


@step
def curate_sets(
    request: RequestParameter, base_model: Path
) -> tuple[Annotated[Path, "curated_sets"], Annotated[dict, "curation_summary"]]:
    earlier = earlier_classes(earlier_erasures(MlflowClient(), request.registry.model_name, request.request.id))
    curated = curate_request(request, resolve(base_model), scratch_dir("curated-") / "sets", earlier_classes=earlier)
    log_curation(request, curated)
    curated.raise_on_failure()
    return curated.folder, curated.summary()


CURATED_SETS = "erasediff.curated_sets"  # run metadata: what became of the run's curated sets


def purge_curated_sets(uri: str) -> str:
    """Delete a run's curated sets (its `curated_sets` artifact, at `uri`) from the artifact store; says what was done.
    ZenML keeps the artifact's record (lineage), whose data is then gone."""
    if not fileio.exists(uri):
        return "not stored"
    fileio.rmtree(uri)
    return "purged from the artifact store when the run ended (content hashes: the MLflow run's curation/manifest.csv)"
