"""Step: materialise the forget/retain sets with a content-hash manifest and validate them with Great Expectations.

A failed suite stops the run here, listing the failing expectations; the full result is logged first.
"""

from pathlib import Path
from typing import Annotated

from mlflow.tracking import MlflowClient
from zenml import step

from erasediff.request.curate import curate_request
from erasediff.request.schema import ErasureRequest
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.registry import earlier_classes, earlier_erasures
from mlflow_adapters.step_folders import resolve
from mlflow_adapters.tracking import log_curation


@step
def curate_sets(
    request: ErasureRequest, base_model: Path
) -> tuple[Annotated[Path, "curated_sets"], Annotated[dict, "curation_summary"]]:
    earlier = earlier_classes(earlier_erasures(MlflowClient(), request.registry.model_name, request.request.id))
    curated = curate_request(request, resolve(base_model), scratch_dir("curated-") / "sets", earlier_classes=earlier)
    log_curation(request, curated)
    curated.raise_on_failure()
    return curated.folder, curated.summary()
