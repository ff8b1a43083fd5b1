"""Human sign-off on the registry: approve or reject a candidate, roll the champion back, and answer an auditor.

A request whose `registry.approval` is `required` ends its run with the version registered and `@candidate` on it
(mlflow_adapters/promotion.py). Only `approve`, by someone other than the requester, moves `@champion` there, after
re-checking that the candidate's gates passed and that no version newer than it has held `@champion` since (it
was gated against the registry as it was; a newer erasure would not have been re-checked). Every decision is
recorded on the version (tags) and in the model's audit log (mlflow_adapters/audit.py).
"""

import json

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError
from mlflow_adapters.audit import AuditEntry, append, ever_held, holder_at, move_alias, now, read_log
from mlflow_adapters.promotion_lock import promotion_lock
from mlflow_adapters.registry import REQUEST_TAG

CHAMPION = "champion"
DECISION = "review.decision"  # pending, approved, rejected, automatic


def request_version(client: MlflowClient, request_id: str) -> ModelVersion:
    found = client.search_model_versions(f"tags.{REQUEST_TAG} = '{request_id}'")
    if not found:
        raise ErasediffError(
            f"no registered version carries request {request_id} (gated out, failed, or never run: erasediff request "
            f"status {request_id})"
        )
    return min(found, key=lambda v: int(v.version))


def _decide(client: MlflowClient, version: ModelVersion, decision: str, reviewer: str, comment: str) -> None:
    for key, value in {
        DECISION: decision,
        "review.reviewer": reviewer,
        "review.time": now(),
        "review.comment": comment,
    }.items():
        client.set_model_version_tag(version.name, version.version, key, value)


def _drop_candidate(client: MlflowClient, version: ModelVersion) -> None:
    """Take the candidate alias off a decided version (unless it has since moved elsewhere)."""
    candidate = version.tags.get("review.candidate_alias")
    if candidate and candidate in client.get_model_version(version.name, version.version).aliases:
        client.delete_registered_model_alias(version.name, candidate)


def _pending(client: MlflowClient, request_id: str, reviewer: str) -> ModelVersion:
    version = request_version(client, request_id)
    state = version.tags.get(DECISION)
    if state != "pending":
        raise ErasediffError(
            f"request {request_id} ({version.name} version {version.version}) is not awaiting review: its decision is "
            f"{state or 'automatic'}"
        )
    if reviewer.strip().lower() == version.tags.get("requester", "").strip().lower():
        raise ErasediffError(f"{reviewer} requested {request_id}; a reviewer must be someone else (four eyes)")
    return version


def approve(client: MlflowClient, request_id: str, reviewer: str, comment: str) -> AuditEntry:
    """Move the request's alias (`@champion` unless it named another) to its candidate version."""
    version = _pending(client, request_id, reviewer)
    alias = version.tags.get("review.target_alias", CHAMPION)
    if not json.loads(version.tags.get("gate_report", "{}")).get("passed"):
        raise ErasediffError(
            f"{version.name} version {version.version} has no passing gate report; it cannot be approved"
        )
    with promotion_lock(client, version.name, f"approval of {request_id}"):
        newer = sorted(v for v in ever_held(read_log(client, version.name), alias) if v > int(version.version))
        if newer:
            raise ErasediffError(
                f"version {newer[-1]} of {version.name} held @{alias} after {request_id} was gated, so its erasure was "
                "not "
                "re-checked against this candidate; submit the request again under a new id"
            )
        _decide(client, version, "approved", reviewer, comment)
        entry = move_alias(client, version.name, alias, int(version.version), "approve", reviewer, request_id, comment)
        _drop_candidate(client, version)
    return entry


def reject(client: MlflowClient, request_id: str, reviewer: str, comment: str) -> AuditEntry:
    """Record the refusal; the candidate alias is taken off the version, `@champion` is untouched."""
    version = _pending(client, request_id, reviewer)
    with promotion_lock(client, version.name, f"rejection of {request_id}"):
        _decide(client, version, "rejected", reviewer, comment)
        _drop_candidate(client, version)
        entry = AuditEntry(now(), "reject", None, int(version.version), None, reviewer, request_id, comment)
        append(client, version.name, entry)
    return entry


def rollback(
    client: MlflowClient,
    model_name: str,
    to_version: int,
    reviewer: str,
    reason: str,
    force: bool = False,
    alias: str = CHAMPION,
) -> AuditEntry:
    """Move `@champion` (or `alias`) back to `to_version`; refused when a later version that held `@champion` erased
    something
    the target still contains, unless `force` (the reason is recorded)."""
    try:
        target = client.get_model_version(model_name, str(to_version))
    except MlflowException as exc:
        raise ErasediffError(f"{model_name} has no version {to_version}") from exc
    if not reason.strip():
        raise ErasediffError("a rollback needs --reason")
    with promotion_lock(client, model_name, f"rollback to {to_version}"):
        later = [
            client.get_model_version(model_name, str(v))
            for v in sorted(ever_held(read_log(client, model_name), alias))
            if v > to_version
        ]
        in_force = [v for v in later if v.tags.get(REQUEST_TAG)]
        if in_force and not force:
            erased = ", ".join(f"{v.tags[REQUEST_TAG]} (version {v.version}: {erased_what(v)})" for v in in_force)
            raise ErasediffError(
                f"version {to_version} predates erasure(s) still in force: {erased}; rolling back would bring them "
                "back "
                "(--force with a --reason overrides, and is recorded)"
            )
        action = "rollback (forced)" if in_force else "rollback"
        return move_alias(
            client, model_name, alias, int(target.version), action, reviewer, target.tags.get(REQUEST_TAG), reason
        )


def erased_what(version: ModelVersion) -> str:
    tags = version.tags
    return (
        f"classes {tags['forgotten_classes']}"
        if "forgotten_classes" in tags
        else f"concept {tags.get('forgotten_concept', '?')!r}"
    )


def champion_at(client: MlflowClient, model_name: str, at: str, alias: str = CHAMPION) -> dict:
    """Which version held `@champion` (or `alias`) at `at`, who moved it there and why, and what that version erased."""
    entry = holder_at(read_log(client, model_name), alias, at)
    if entry is None:
        return {
            "model": model_name,
            "alias": alias,
            "at": at,
            "version": None,
            "detail": f"no version held @{alias} at {at}",
        }
    v = client.get_model_version(model_name, str(entry.to_version))
    return {
        "model": model_name,
        "alias": alias,
        "at": at,
        "version": entry.to_version,
        "since": entry.time,
        "action": entry.action,
        "by": entry.actor,
        "reason": entry.reason,
        "request_id": v.tags.get(REQUEST_TAG),
        "erased": erased_what(v) if v.tags.get(REQUEST_TAG) else "nothing (a base model)",
        "requester": v.tags.get("requester"),
        "review": {k[len("review.") :]: val for k, val in v.tags.items() if k.startswith("review.")},
    }
