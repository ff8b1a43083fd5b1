"""Step: register the unlearned model and move the alias to it, only when every gate passed; once per request id.

The registered version is a pyfunc holding the diffusers folder (with its model card, README.md), tagged with
the request's lineage. A gated-out model is not registered; the report step then ends the run as gated out.
"""

import json
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import mlflow
import torch
from mlflow.models import ModelSignature
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema
from zenml import get_step_context, log_metadata, step

import erasediff
from erasediff.code_version import code_version
from erasediff.erasure_checks import write_concept_check
from erasediff.report import MODEL_CARD, model_card
from erasediff.request import ErasureRequest
from erasediff.unlearn_job import MODEL
from steps.registry import CHECK_ARTIFACT, DIFFUSERS_ARTIFACT, REQUEST_TAG, promoted_version

# What the registry serves, by target kind: the pyfunc file (models-from-code) and its input signature.
PYFUNCS = {
    "class": (Path(__file__).with_name("diffusers_pyfunc.py"), ModelSignature(
        inputs=Schema([ColSpec("long", "class")]),
        params=ParamSchema([ParamSpec("guidance", "double", 2.0), ParamSpec("steps", "long", 25), ParamSpec("seed", "long", 0)]))),
    "concept": (Path(__file__).with_name("text_to_image_pyfunc.py"), ModelSignature(
        inputs=Schema([ColSpec("string", "prompt")]),
        params=ParamSchema([ParamSpec("guidance", "double", 7.5), ParamSpec("steps", "long", 25), ParamSpec("seed", "long", 0)]))),
}


def _lineage_tags(req: ErasureRequest, base_model_sha256: str, curation_summary: dict, gate_report: dict) -> dict[str, str]:
    info = req.request
    return {
        REQUEST_TAG: info.id, "requester": info.requester, "reason": info.reason, "legal_basis": info.legal_basis or "",
        **({"forgotten_classes": json.dumps(req.target.classes)} if req.target.kind == "class"
           else {"forgotten_concept": req.target.concept, "anchors": json.dumps(req.target.anchors)}),
        "base_model": req.base_model, "base_model_sha256": base_model_sha256,
        "forget_manifest_sha256": curation_summary["forget_sha256"], "retain_manifest_sha256": curation_summary["retain_sha256"],
        "gate_report": json.dumps(gate_report), "pipeline_run_id": str(get_step_context().pipeline_run.id),
        "mlflow_run_id": mlflow.active_run().info.run_id, "code_version": code_version(),
    }


@step
def promote(request: dict, unlearned_model: Path, base_model_sha256: str, curation_summary: dict, gate_report: dict,
            evaluation: dict) -> Annotated[dict, "promotion"]:
    req = ErasureRequest.model_validate(request)
    name, alias = req.registry.model_name, req.registry.alias
    failed = [g["gate"] for g in gate_report["gates"] if not g["passed"]]
    if not gate_report["passed"] or failed:
        print(f"not promoted: gate(s) failed: {', '.join(failed) or 'none configured'}; the registry is unchanged")
        return {"status": "gated-out", "model_name": name, "failed_gates": failed}
    client = MlflowClient()
    if (existing := promoted_version(client, name, req.request.id)) is not None:
        print(f"request {req.request.id} was already promoted as {name} version {existing.version}; nothing registered")
        return {"status": "already-promoted", "model_name": name, "version": int(existing.version)}
    pyfunc, signature = PYFUNCS[req.target.kind]
    tags = _lineage_tags(req, base_model_sha256, curation_summary, gate_report)
    folder = Path(shutil.copytree(unlearned_model / MODEL, Path(tempfile.mkdtemp(prefix="promoted-")) / MODEL))  # the input artifact stays as stored
    provenance = {k: tags[k] for k in ("code_version", "pipeline_run_id", "mlflow_run_id", "forget_manifest_sha256", "retain_manifest_sha256")}
    card = model_card(request, base_model_sha256, gate_report, datetime.now(timezone.utc).isoformat(timespec="seconds"), provenance,
                      evaluation.get("earlier_erasures", []))
    (folder / MODEL_CARD).write_text(card)
    if req.target.kind == "concept":  # what later versions of this model must keep passing (logged before registering)
        mlflow.log_artifacts(str(write_concept_check(req, Path(tempfile.mkdtemp(prefix="check-")))), CHECK_ARTIFACT)
    info = mlflow.pyfunc.log_model(
        name="model", python_model=str(pyfunc), artifacts={DIFFUSERS_ARTIFACT: str(folder)}, signature=signature,
        pip_requirements=[f"erasediff=={erasediff.__version__}", f"torch=={torch.__version__.split('+')[0]}", f"mlflow=={mlflow.__version__}"],
    )
    version = mlflow.register_model(info.model_uri, name, tags=tags)
    client.set_registered_model_alias(name, alias, version.version)
    promotion = {"status": "promoted", "model_name": name, "version": int(version.version), "alias": alias, "model_uri": f"models:/{name}@{alias}",
                 "model_id": info.model_id}
    mlflow.set_tags({"promoted.version": version.version, "promoted.alias": alias})
    log_metadata(metadata={"mlflow_registered_model": promotion}, infer_model=True)
    print(f"promoted {name} version {version.version} as @{alias}")
    return promotion
