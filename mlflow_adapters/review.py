"""Human sign-off on the registry: approve or reject a candidate, roll the champion back, and answer an auditor.

A request whose `registry.approval` is `required` registers its passing version in the candidates model
(`<model>-candidates`, which the pipeline's account can write) with `@candidate` on it (mlflow_adapters/promotion.py).
Only `approve` puts it into service: it copies the version into `<model>` with `copy_model_version` (tags, gate
report and hashes travel with it) and moves `@champion` there. On a server with authentication only reviewers may
edit `<model>`, so the registry itself refuses everyone else; this module adds the checks the registry cannot make:
the actor is the user the server authenticated (mlflow_adapters/identity.py), not the requester and not the
account that registered the candidate, the candidate's gates passed, and nothing was promoted into `<model>` after
the candidate was gated against it. Every decision is recorded on the versions (tags) and in both models' audit
logs (mlflow_adapters/audit.py).
"""

import json

from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError
from erasediff.util.record_text import name_problem, record_text_problem, same_person
from mlflow_adapters.audit import AuditEntry, append, ever_held, holder_at, move_alias, now, read_log
from mlflow_adapters.identity import Identity
from mlflow_adapters.permissions import refused
from mlflow_adapters.promotion_lock import promotion_lock
from mlflow_adapters.registry import HASH_TAG, REQUEST_TAG
from mlflow_adapters.registry import earlier_erasures as registry_earlier_erasures

CHAMPION = "champion"
DECISION = "review.decision"  # pending, approved, rejected, automatic
REGISTERED_BY, GATED_AGAINST = "registered_by", "review.gated_against"
TARGET_MODEL, TARGET_ALIAS, CANDIDATE_ALIAS = "review.target_model", "review.target_alias", "review.candidate_alias"


def check_inputs(claimed: str | None, text: str, what: str, required: bool) -> str:
    """Refuse a typed name or text that could forge a record (before any store is opened); returns the text."""
    if claimed is not None and (problem := name_problem(claimed)):
        raise ErasediffError(f"--reviewer {claimed!r} {problem}")
    if (text or required) and (problem := record_text_problem(text)):
        raise ErasediffError(f"{what} {problem}")
    return text


def actor_of(identity: Identity, claimed: str | None) -> tuple[str, str]:
    """(the name the four-eyes rule compares, the actor as recorded). On an authenticated store the server's user;
    `--reviewer`, when given, must be that user. Without authentication, the typed name (required), recorded as
    unauthenticated."""
    check_inputs(claimed, "", "", required=False)
    if identity.authenticated:
        if claimed and not same_person(claimed, identity.name):
            raise ErasediffError(
                f"--reviewer {claimed} is not the user the tracking server authenticated ({identity.name}); a decision "
                "is made by the user whose credentials make it"
            )
        return identity.name, identity.recorded()
    if not claimed:
        raise ErasediffError(
            "this tracking store does not authenticate its users: name yourself with --reviewer (the decision is "
            "recorded as unauthenticated)"
        )
    return claimed, identity.recorded(claimed)


def is_candidate(version: ModelVersion) -> bool:
    """A version in a candidates model (its approved copy in the model carries the same tags, but another name)."""
    return version.tags.get(TARGET_MODEL) not in (None, version.name)


def served_first(versions: list[ModelVersion]) -> list[ModelVersion]:
    """A request's versions, the one in its serving model first (its approved copy), then its candidate."""
    return sorted(versions, key=lambda v: (is_candidate(v), int(v.version)))


def _request_versions(client: MlflowClient, request_id: str) -> list[ModelVersion]:
    found = client.search_model_versions(f"tags.{REQUEST_TAG} = '{request_id}'")
    if not found:
        raise ErasediffError(
            f"no registered version carries request {request_id} (gated out, failed, or never run: erasediff request "
            f"status {request_id})"
        )
    return found


def request_version(client: MlflowClient, request_id: str) -> ModelVersion:
    """The version a request registered first: its candidate when it has one, else the one it promoted."""
    return sorted(_request_versions(client, request_id), key=lambda v: (not is_candidate(v), int(v.version)))[0]


def served_version(client: MlflowClient, request_id: str) -> ModelVersion:
    """The request's version that serves: its approved copy when it has one, else its candidate."""
    return served_first(_request_versions(client, request_id))[0]


def _pending(client: MlflowClient, request_id: str, actor: str) -> ModelVersion:
    version = request_version(client, request_id)
    state = version.tags.get(DECISION)
    if state != "pending":
        raise ErasediffError(
            f"request {request_id} ({version.name} version {version.version}) is not awaiting review: its decision is "
            f"{state or 'automatic'}"
        )
    if same_person(actor, version.tags.get("requester", "")):
        raise ErasediffError(f"{actor} requested {request_id}; a reviewer must be someone else (four eyes)")
    if same_person(actor, version.tags.get(REGISTERED_BY, "")):
        raise ErasediffError(
            f"{actor} registered the candidate of {request_id} (the pipeline's account); a reviewer must be someone "
            "else (four eyes)"
        )
    return version


def _decide(client: MlflowClient, version: ModelVersion, decision: str, actor: str, comment: str) -> None:
    tags = {DECISION: decision, "review.reviewer": actor, "review.time": now(), "review.comment": comment}
    try:
        for key, value in tags.items():
            client.set_model_version_tag(version.name, version.version, key, value)
    except MlflowException as exc:
        raise refused(exc, "record a decision on", version.name, "EDIT") from exc


def _close_candidate(client: MlflowClient, version: ModelVersion, action: str, actor: str, comment: str) -> None:
    """Record the decision in the candidates model's log and take `@candidate` off the decided version."""
    alias = version.tags.get(CANDIDATE_ALIAS)
    if alias and alias in client.get_model_version(version.name, version.version).aliases:
        try:
            client.delete_registered_model_alias(version.name, alias)
        except MlflowException as exc:
            raise refused(exc, f"take @{alias} off", version.name, "MANAGE") from exc
    append(
        client,
        version.name,
        action=action,
        alias=alias,
        from_version=int(version.version),
        to_version=None,
        actor=actor,
        request_id=version.tags.get(REQUEST_TAG),
        reason=comment,
        version_sha256=version.tags.get(HASH_TAG),
    )


def _reviewing(
    client: MlflowClient, request_id: str, identity: Identity, claimed: str | None, comment: str
) -> tuple[str, str, ModelVersion]:
    """What a decision starts from: the checked comment, the actor as recorded, the candidate awaiting review."""
    comment = check_inputs(claimed, comment, "--comment", required=False)
    name, actor = actor_of(identity, claimed)
    return comment, actor, _pending(client, request_id, name)


def approve(
    client: MlflowClient, request_id: str, identity: Identity, claimed: str | None, comment: str = ""
) -> AuditEntry:
    """Copy the request's candidate into its model and move `@champion` (unless it named another alias) there."""
    comment, actor, candidate = _reviewing(client, request_id, identity, claimed, comment)
    model, alias = candidate.tags.get(TARGET_MODEL, candidate.name), candidate.tags.get(TARGET_ALIAS, CHAMPION)
    if not json.loads(candidate.tags.get("gate_report", "{}")).get("passed"):
        raise ErasediffError(
            f"{candidate.name} version {candidate.version} has no passing gate report; it cannot be approved"
        )
    with promotion_lock(client, candidate.name, f"approval of {request_id}"):
        with promotion_lock(client, model, f"approval of {request_id}"):
            gated = set(json.loads(candidate.tags.get(GATED_AGAINST, "[]")))
            if unseen := [
                e for e in registry_earlier_erasures(client, model, request_id) if e["request_id"] not in gated
            ]:
                newer = ", ".join(f"{e['request_id']} (version {e['version']})" for e in unseen)
                raise ErasediffError(
                    f"{newer} was promoted into {model} after {request_id} was gated, so its erasure was not "
                    "re-checked against this candidate; submit the request again under a new id"
                )
            try:
                copy = client.copy_model_version(f"models:/{candidate.name}/{candidate.version}", model)
            except MlflowException as exc:
                raise refused(exc, "copy an approved candidate into", model, "EDIT") from exc
            _decide(client, copy, "approved", actor, comment)
            _decide(client, candidate, "approved", actor, comment)
            client.set_model_version_tag(
                model, copy.version, "review.candidate", f"{candidate.name}/{candidate.version}"
            )
            _close_candidate(client, candidate, "approve", actor, comment)
            try:
                return move_alias(client, model, alias, int(copy.version), "approve", actor, request_id, comment)
            except MlflowException as exc:
                raise refused(exc, f"move @{alias} of", model, "EDIT") from exc


def reject(
    client: MlflowClient, request_id: str, identity: Identity, claimed: str | None, comment: str = ""
) -> AuditEntry:
    """Record the refusal; the candidate alias is taken off the version, `@champion` is untouched."""
    comment, actor, candidate = _reviewing(client, request_id, identity, claimed, comment)
    with promotion_lock(client, candidate.name, f"rejection of {request_id}"):
        _decide(client, candidate, "rejected", actor, comment)
        _close_candidate(client, candidate, "reject", actor, comment)
    return read_log(client, candidate.name)[-1]


def rollback(
    client: MlflowClient,
    model_name: str,
    to_version: int,
    identity: Identity,
    claimed: str | None,
    reason: str,
    force: bool = False,
    alias: str = CHAMPION,
) -> AuditEntry:
    """Move `@champion` (or `alias`) back to `to_version`; refused when a later version that held `@champion` erased
    something the target still contains, unless `force` (the reason is recorded)."""
    reason = check_inputs(claimed, reason, "--reason", required=True)
    _, actor = actor_of(identity, claimed)
    try:
        target = client.get_model_version(model_name, str(to_version))
    except MlflowException as exc:
        raise ErasediffError(f"{model_name} has no version {to_version}") from exc
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
                "back (--force with a --reason overrides, and is recorded)"
            )
        action = "rollback (forced)" if in_force else "rollback"
        try:
            return move_alias(
                client, model_name, alias, int(target.version), action, actor, target.tags.get(REQUEST_TAG), reason
            )
        except MlflowException as exc:
            raise refused(exc, f"move @{alias} of", model_name, "EDIT") from exc


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
