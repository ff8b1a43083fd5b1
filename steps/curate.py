"""Step: materialise the forget/retain sets with a content-hash manifest and validate them with Great Expectations.

A failed suite stops the run here, listing the failing expectations; the full result is logged first.
"""

import json
import tempfile
from pathlib import Path
from typing import Annotated

import mlflow
from mlflow.tracking import MlflowClient
from zenml import step

from erasediff.curation import MANIFEST, SETS, balance_report, set_hashes
from erasediff.errors import DataError
from erasediff.hashing import config_hash
from erasediff.request import ErasureRequest
from erasediff.set_validation import curate_request
from steps.registry import earlier_classes, earlier_erasures
from steps.tracking import log_files

VALIDATION = "validation.json"


@step
def curate_sets(request: dict, base_model: Path) -> tuple[Annotated[Path, "curated_sets"], Annotated[dict, "curation_summary"]]:
    req = ErasureRequest.model_validate(request)
    out = Path(tempfile.mkdtemp(prefix="curated-")) / "sets"
    earlier = earlier_classes(earlier_erasures(MlflowClient(), req.registry.model_name, req.request.id))
    manifest, report = curate_request(req, base_model, out, earlier_classes=earlier)
    (out / VALIDATION).write_text(json.dumps({"success": report.success, "failures": report.failures, "suites": report.results}, indent=2))
    balance_report(manifest).to_csv(out / "balance.csv")
    log_files([out / VALIDATION, out / "balance.csv", out / MANIFEST], "curation")
    hashes = set_hashes(manifest)
    for name in SETS:
        part = manifest[manifest["set"] == name]
        source = req.source(name)
        origin = source if isinstance(source, str) else f"generated-{config_hash(source.model_dump())}"  # a scheme-less source MLflow resolves
        mlflow.log_input(mlflow.data.from_pandas(part, source=f"{origin}#{name}", name=f"{name}-set", digest=hashes[name][:16]), context=name)
    mlflow.set_tag("curation.passed", str(report.success).lower())
    if not report.success:
        raise DataError(f"curation failed {len(report.failures)} expectation(s): " + " | ".join(report.failures))
    return out, {f"{name}_sha256": hashes[name] for name in SETS} | {f"{name}_images": int((manifest["set"] == name).sum()) for name in SETS}
