"""The alias history of a registered model: every alias move and review decision, appended as registered-model tags.

MLflow keeps only where an alias points now. Each entry here is one tag `audit.NNNNNN` on the registered model, a JSON
object (time, action, alias, from and to version, actor, request id, reason), so the history lives in the same store
as the model, survives a server restart, and is read back with nothing but the MLflow client. Entries are appended
under the model's promotion lock, so two writers never take the same number.
"""

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError

PREFIX = "audit."


@dataclass(frozen=True)
class AuditEntry:
    time: str  # ISO 8601, UTC
    action: str  # promote (automatic), candidate, approve, reject, rollback
    alias: str | None  # the alias moved (None: a decision that moved none)
    from_version: int | None
    to_version: int | None
    actor: str  # the reviewer, or "pipeline" for an automatic move
    request_id: str | None
    reason: str = ""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def read_log(client: MlflowClient, model_name: str) -> list[AuditEntry]:
    """Every entry, oldest first."""
    tags = client.get_registered_model(model_name).tags
    return [AuditEntry(**json.loads(tags[k])) for k in sorted(k for k in tags if k.startswith(PREFIX))]


def append(client: MlflowClient, model_name: str, entry: AuditEntry) -> None:
    """Add one entry (call under the model's promotion lock)."""
    tags = client.get_registered_model(model_name).tags
    n = 1 + max((int(k[len(PREFIX) :]) for k in tags if k.startswith(PREFIX)), default=0)
    client.set_registered_model_tag(model_name, f"{PREFIX}{n:06d}", json.dumps(asdict(entry)))


def move_alias(
    client: MlflowClient,
    model_name: str,
    alias: str,
    version: int,
    action: str,
    actor: str,
    request_id: str | None,
    reason: str,
) -> AuditEntry:
    """Point `alias` at `version` and record the move (call under the model's promotion lock)."""
    try:
        before = int(client.get_model_version_by_alias(model_name, alias).version)
    except MlflowException:  # the alias is unset
        before = None
    client.set_registered_model_alias(model_name, alias, str(version))
    entry = AuditEntry(now(), action, alias, before, version, actor, request_id, reason)
    append(client, model_name, entry)
    return entry


def parse_time(text: str) -> str:
    """A user's time (ISO 8601, a date alone meaning its end; UTC when no zone is given) in the log's own form."""
    try:
        t = datetime.fromisoformat(text)
    except ValueError as exc:
        raise ErasediffError(
            f"--at {text!r} is not an ISO 8601 time (e.g. 2026-03-03 or 2026-03-03T14:00:00+00:00)"
        ) from exc
    if len(text) == 10:
        t = t.replace(hour=23, minute=59, second=59)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")


def holder_at(entries: list[AuditEntry], alias: str, at: str) -> AuditEntry | None:
    """The entry that put `alias` where it was at time `at` (ISO 8601; None: the alias was unset then)."""
    moves = [e for e in entries if e.alias == alias and e.to_version is not None and e.time <= at]
    return moves[-1] if moves else None


def ever_held(entries: list[AuditEntry], alias: str) -> set[int]:
    return {e.to_version for e in entries if e.alias == alias and e.to_version is not None}
