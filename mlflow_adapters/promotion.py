"""Promotion into the MLflow model registry: the registered version is a pyfunc holding the unlearned diffusers
folder as a part manifest (its parts stored once per model, `blob_store.py`) and its model card (README.md),
tagged with the request's lineage, and the alias moves to it.
"""

import json
import os
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import torch
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.tracking import MlflowClient
from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

import erasediff
from erasediff.reporting.model_card import MODEL_CARD, inherited_license, model_card
from erasediff.request.earlier_checks import write_concept_check
from erasediff.request.schema import ErasureRequest
from erasediff.storage.parts import PARTS_FILE, pack
from erasediff.util.hashing import folder_hash
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.audit import move_alias
from mlflow_adapters.blob_store import RunBlobs, parts_run
from mlflow_adapters.identity import checked_identity
from mlflow_adapters.permissions import refused
from mlflow_adapters.promotion_lock import promotion_lock
from mlflow_adapters.registry import (
    CHECK_ARTIFACT,
    DIFFUSERS_ARTIFACT,
    HASH_TAG,
    NOTIFY_TAG,
    REQUEST_TAG,
    promoted_version,
)
from mlflow_adapters.registry import earlier_erasures as registry_earlier_erasures
from mlflow_adapters.review import (
    CANDIDATE_ALIAS,
    DECISION,
    GATED_AGAINST,
    REGISTERED_BY,
    TARGET_ALIAS,
    TARGET_MODEL,
)
from mlflow_adapters.step_folders import STORED_BYTES

HERE = Path(__file__).parent
# What the registry serves, by target kind: the pyfunc file (models-from-code) and its input signature.
PYFUNCS = {
    "class": (
        HERE / "class_pyfunc.py",
        ModelSignature(
            inputs=Schema([ColSpec("long", "class")]),
            params=ParamSchema(
                [ParamSpec("guidance", "double", 2.0), ParamSpec("steps", "long", 25), ParamSpec("seed", "long", 0)]
            ),
        ),
    ),
    "concept": (
        HERE / "text_to_image_pyfunc.py",
        ModelSignature(
            inputs=Schema([ColSpec("string", "prompt")]),
            params=ParamSchema(
                [ParamSpec("guidance", "double", 7.5), ParamSpec("steps", "long", 25), ParamSpec("seed", "long", 0)]
            ),
        ),
    ),
}


def lineage_tags(
    req: ErasureRequest, base_model_sha256: str, curation_summary: dict, gate_report: dict, provenance: dict
) -> dict[str, str]:
    """Everything a registered version says about where it came from (MLflow tags are strings)."""
    info = req.request
    return {
        REQUEST_TAG: info.id,
        "requester": info.requester,
        "reason": info.reason,
        "legal_basis": info.legal_basis or "",
        **(
            {"forgotten_classes": json.dumps(req.target.classes)}
            if req.target.kind == "class"
            else {"forgotten_concept": req.target.concept, "anchors": json.dumps(req.target.anchors)}
        ),
        "base_model": req.base_model,
        "base_model_sha256": base_model_sha256,
        "forget_manifest_sha256": curation_summary["forget_sha256"],
        "retain_manifest_sha256": curation_summary["retain_sha256"],
        "gate_report": json.dumps(gate_report),
        **provenance,
        **({NOTIFY_TAG: json.dumps(req.notify.model_dump(mode="json"))} if req.notify else {}),
    }


STALE_GATE = (
    "earlier_erasures_current"  # fails when a version was promoted between this run's evaluation and its promotion
)


def _register(
    req: ErasureRequest,
    model_dir: Path,
    base_model_sha256: str,
    curation_summary: dict,
    gate_report: dict,
    earlier_erasures: list[dict],
    provenance: dict,
    registered_name: str,
) -> tuple[ModelVersion, ModelInfo]:
    """Log the pyfunc (a copy of the folder with its model card) to the active run and register it with the lineage
    tags under `registered_name` (the model, or its candidates model when approval is required)."""
    pyfunc, signature = PYFUNCS[req.target.kind]
    tags = lineage_tags(req, base_model_sha256, curation_summary, gate_report, provenance)
    folder = linked_copy(model_dir, MODEL_CARD)  # the card is written anew below
    card_provenance = {
        k: tags[k]
        for k in (
            "code_version",
            "pipeline_run_id",
            "mlflow_run_id",
            "forget_manifest_sha256",
            "retain_manifest_sha256",
        )
    }
    promoted_at = datetime.now(UTC).isoformat(timespec="seconds")
    card = model_card(
        req.as_params(),
        base_model_sha256,
        gate_report,
        promoted_at,
        card_provenance,
        earlier_erasures,
        inherited_license(model_dir / MODEL_CARD),
    )
    (folder / MODEL_CARD).write_text(card)
    if req.target.kind == "concept":  # what later versions of this model must keep passing (logged before registering)
        mlflow.log_artifacts(str(write_concept_check(req, scratch_dir("check-"))), CHECK_ARTIFACT)
    registered = _store_parts(registered_name, folder, tags)
    with warnings.catch_warnings():
        # an input example would make MLflow run the model (sample images) while logging; the signature is explicit
        warnings.filterwarnings("ignore", message=".*An input example was not provided", category=UserWarning)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(pyfunc),
            artifacts={DIFFUSERS_ARTIFACT: str(registered)},
            signature=signature,
            pip_requirements=[
                f"erasediff=={erasediff.__version__}",
                f"torch=={torch.__version__.split('+')[0]}",
                f"mlflow=={mlflow.__version__}",
            ],
        )
    version = mlflow.register_model(info.model_uri, registered_name, tags=tags)
    MlflowClient().update_model_version(
        registered_name, version.version, description=version_description(req, gate_report)
    )
    return version, info


def linked_copy(model_dir: Path, left_out: str) -> Path:
    """The folder to register, in scratch, without its top-level file `left_out` (to be written anew): the other files
    hard-linked to the stored ones where the file system allows (an SD folder's 4 GB in no time and no space; copying
    took 8 s and doubled the scratch peak), copied where it does not. Nothing may write into a linked file: the stored
    folder stays as stored."""
    target = scratch_dir("promoted-") / model_dir.name

    def ignore(folder: str, names: list[str]) -> list[str]:
        return [left_out] if Path(folder) == model_dir else []

    try:
        shutil.copytree(model_dir, target, ignore=ignore, copy_function=os.link)
    except OSError:  # another file system (a pod's cache volume and its scratch), or links not allowed
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(model_dir, target, ignore=ignore)
    return target


def _store_parts(model_name: str, folder: Path, tags: dict[str, str]) -> Path:
    """Store the folder's parts that the model's part store lacks (mlflow_adapters/blob_store.py); return the folder to
    register: the part manifest and the model card. Records the bytes this version added and the pipeline's size as
    tags."""
    client = MlflowClient()
    blobs = RunBlobs(client, parts_run(client, model_name, mlflow.active_run().info.experiment_id))
    manifest, added = pack(folder, blobs)
    blobs.flush()
    registered = scratch_dir("registered-") / folder.name
    registered.mkdir()
    (registered / PARTS_FILE).write_text(json.dumps({**manifest, "parts_run_id": blobs.run_id}, indent=1))
    shutil.copy(folder / MODEL_CARD, registered / MODEL_CARD)  # readable in the MLflow UI without rebuilding the folder
    run = client.get_run(mlflow.active_run().info.run_id)
    added += int(run.data.metrics.get(STORED_BYTES, 0))  # the weights' parts, stored when the unlearn step ended
    tags.update(
        {
            "storage.bytes_added": str(added),
            "storage.pipeline_bytes": str(manifest["bytes"]),
            HASH_TAG: folder_hash(folder),
        }
    )
    return registered


def version_description(req: ErasureRequest, gate_report: dict) -> str:
    """The model card's summary, as the registered version's description in the MLflow UI."""
    gates = ", ".join(
        f"{g['gate']} {g['value']:.3g} (max {g['threshold']:.3g})"
        for g in gate_report["gates"]
        if g.get("value") is not None
    )
    return (
        f"{req.target.erased.capitalize()} erased from {req.base_model} for request {req.request.id} "
        f"({req.request.requester}: {req.request.reason}; "
        f"legal basis {req.request.legal_basis or 'none given'}). Every gate passed: {gates}. The model card is "
        "README.md in the diffusers folder."
    )


def promote_model(
    req: ErasureRequest,
    model_dir: Path,
    base_model_sha256: str,
    curation_summary: dict,
    gate_report: dict,
    earlier_erasures: list[dict],
    provenance: dict,
) -> dict:
    """Register `model_dir` in the active MLflow run, only when every gate passed and this request id was never
    registered before: into the model with its alias moved (approval: automatic), or into the candidates model with
    `@candidate` on it (approval: required; a reviewer's approval copies it into the model). Returns what happened
    (status, version, alias, URIs)."""
    name, alias = req.registry.model_name, req.registry.alias
    failed = [g["gate"] for g in gate_report["gates"] if not g["passed"]]
    if not gate_report["passed"] or failed:
        print(f"not promoted: gate(s) failed: {', '.join(failed) or 'none configured'}; the registry is unchanged")
        return {"status": "gated-out", "model_name": name, "failed_gates": failed}
    client = MlflowClient()
    identity = checked_identity(req, mlflow.get_tracking_uri())
    pending = req.registry.approval == "required"
    registered_name = req.registry.registers_into
    with promotion_lock(client, registered_name, req.request.id):  # every version is gated against those before it
        for model in {name, registered_name}:
            if (existing := promoted_version(client, model, req.request.id)) is not None:
                print(
                    f"request {req.request.id} was already registered as {model} version {existing.version}; nothing "
                    "registered"
                )
                return {"status": "already-promoted", "model_name": model, "version": int(existing.version)}
        seen = {e["request_id"] for e in earlier_erasures}
        if unseen := [
            e for e in registry_earlier_erasures(client, name, req.request.id) if e["request_id"] not in seen
        ]:
            newer = ", ".join(f"{e['request_id']} (version {e['version']})" for e in unseen)
            print(
                f"not promoted: {newer} was promoted into {name} after this run was evaluated, so its erasure was not "
                "re-checked here; run this request again to be gated against it. The registry is unchanged"
            )
            return {"status": "gated-out", "model_name": name, "failed_gates": [STALE_GATE], "newer": unseen}
        try:
            version, info = _register(
                req,
                model_dir,
                base_model_sha256,
                curation_summary,
                gate_report,
                earlier_erasures,
                {**provenance, REGISTERED_BY: identity.name},
                registered_name,
            )
            review = {DECISION: "pending" if pending else "automatic", GATED_AGAINST: json.dumps(sorted(seen))}
            if (
                pending
            ):  # two-stage: a reviewer copies it into the model and moves @champion (mlflow_adapters/review.py)
                alias = req.registry.candidate_alias
                review |= {TARGET_MODEL: name, TARGET_ALIAS: req.registry.alias, CANDIDATE_ALIAS: alias}
            for key, value in review.items():
                client.set_model_version_tag(registered_name, version.version, key, value)
            move_alias(
                client,
                registered_name,
                alias,
                int(version.version),
                "candidate" if pending else "promote",
                identity.recorded(),
                req.request.id,
                "every gate passed; awaiting a reviewer's approval"
                if pending
                else "every gate passed (registry.approval: automatic)",
            )
        except MlflowException as exc:
            raise refused(exc, "register a version in", registered_name, "EDIT") from exc
    mlflow.set_tags({"promoted.model": registered_name, "promoted.version": version.version, "promoted.alias": alias})
    print(
        f"registered {registered_name} version {version.version} as @{alias}"
        + (
            f"; erasediff request approve {req.request.id} puts it into {name} as @{req.registry.alias}"
            if pending
            else ""
        )
    )
    return {
        "status": "promoted",
        "model_name": registered_name,
        "version": int(version.version),
        "alias": alias,
        "model_uri": f"models:/{registered_name}@{alias}",
        "model_id": info.model_id,
        "awaiting_approval": pending,
        "registered_by": identity.recorded(),
    }
