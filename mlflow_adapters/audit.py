"""The alias history of a registered model: every alias move and review decision, hash-chained, kept in two places.

MLflow keeps only where an alias points now. Each entry here is a JSON object (number, time, action, alias, from and
to version, the version's content hash, actor, request id, reason) that carries the sha256 of the entry before it,
so an entry edited, deleted or reordered breaks the chain from there on. Every entry is written twice: as the
registered-model tag `audit.NNNNNN`, read with nothing but the MLflow client, and as the artifact
`audit/NNNNNN.json` of the model's audit run (experiment `erasediff-audit`), which a registered-model tag edit
cannot reach. `verify` checks the chain, compares the two copies, checks that the aliases the registry holds are
where the log last put them, and that the champion still rebuilds to its recorded hash.

Entries are appended under the model's promotion lock, so two writers never take the same number. A malformed
entry is named by `verify` and skipped by everything else; it never blocks a decision.
"""

import hashlib
import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.registry import HASH_TAG
from mlflow_adapters.store import artifacts_beside

PREFIX = "audit."
AUDIT_EXPERIMENT, AUDIT_TAG = "erasediff-audit", "erasediff.audit_of"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    time: str  # ISO 8601, UTC
    action: str  # promote (automatic), candidate, approve, reject, rollback
    alias: str | None  # the alias moved (None: a decision that moved none)
    from_version: int | None
    to_version: int | None
    actor: str  # the user the tracking server authenticated, or "unauthenticated (typed: NAME)"
    request_id: str | None
    reason: str = ""
    version_sha256: str | None = None  # the content hash of to_version (or of the decided version)
    prev: str = ""  # sha256 of the previous entry's text ("" for the first)


@dataclass(frozen=True)
class LogRecord:
    """One `audit.*` tag as stored: its text and, when it parses, its entry."""

    key: str
    text: str
    entry: AuditEntry | None
    problem: str | None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _parse(key: str, text: str) -> LogRecord:
    try:
        return LogRecord(key, text, AuditEntry(**json.loads(text)), None)
    except (json.JSONDecodeError, TypeError, ValueError) as exc:
        return LogRecord(key, text, None, f"{key} is not an audit entry ({type(exc).__name__})")


def read_records(client: MlflowClient, model_name: str) -> list[LogRecord]:
    tags = client.get_registered_model(model_name).tags
    return [_parse(k, tags[k]) for k in sorted(k for k in tags if k.startswith(PREFIX))]


def read_log(client: MlflowClient, model_name: str) -> list[AuditEntry]:
    """Every readable entry, oldest first (malformed ones are left out: `audit --verify` names them)."""
    return [r.entry for r in read_records(client, model_name) if r.entry is not None]


def audit_run(client: MlflowClient, model_name: str) -> str:
    """The run whose artifacts hold the second copy of `model_name`'s log (made the first time)."""
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    if experiment:
        experiment_id = experiment.experiment_id
    else:
        root = artifacts_beside(client.tracking_uri)
        experiment_id = client.create_experiment(AUDIT_EXPERIMENT, artifact_location=root.as_uri() if root else None)
    found = client.search_runs([experiment_id], filter_string=f"tags.`{AUDIT_TAG}` = '{model_name}'", max_results=1)
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, tags={AUDIT_TAG: model_name}, run_name=f"audit-{model_name}")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def append(client: MlflowClient, model_name: str, **fields) -> AuditEntry:
    """Add one entry, chained to the last one (call under the model's promotion lock)."""
    records = read_records(client, model_name)
    n = 1 + max((int(r.key[len(PREFIX) :]) for r in records if r.key[len(PREFIX) :].isdigit()), default=0)
    entry = AuditEntry(seq=n, time=now(), prev=text_hash(records[-1].text) if records else "", **fields)
    text = json.dumps(asdict(entry), sort_keys=True)
    client.log_text(audit_run(client, model_name), text, f"audit/{n:06d}.json")  # the copy first: a tag is final
    client.set_registered_model_tag(model_name, f"{PREFIX}{n:06d}", text)
    return entry


def version_hash(client: MlflowClient, model_name: str, version: int | None) -> str | None:
    if version is None:
        return None
    return client.get_model_version(model_name, str(version)).tags.get(HASH_TAG)


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
    return append(
        client,
        model_name,
        action=action,
        alias=alias,
        from_version=before,
        to_version=version,
        actor=actor,
        request_id=request_id,
        reason=reason,
        version_sha256=version_hash(client, model_name, version),
    )


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


def _artifact_copies(client: MlflowClient, model_name: str) -> dict[str, str]:
    """The audit run's copy of each entry, by tag key."""
    folder = scratch_dir("audit-")
    try:
        run_id = audit_run(client, model_name)
        names = [Path(f.path).name for f in client.list_artifacts(run_id, "audit")]
        if not names:
            return {}
        local = Path(client.download_artifacts(run_id, "audit", str(folder)))
        return {f"{PREFIX}{n.removesuffix('.json')}": (local / n).read_text() for n in names}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def chain_problems(records: list[LogRecord], copies: dict[str, str]) -> list[str]:
    """What is wrong with a log, first problem first: malformed, missing, edited, reordered or uncopied entries."""
    problems = []
    expected_prev = ""
    for i, record in enumerate(records, start=1):
        key = f"{PREFIX}{i:06d}"
        if record.key != key:
            problems.append(f"{key} is missing (deleted): the log jumps to {record.key}")
            break
        if record.problem:
            problems.append(record.problem)
            break
        if record.key not in copies:
            problems.append(f"{record.key} has no copy in the audit run (written outside the tool)")
        elif copies[record.key] != record.text:
            problems.append(f"{record.key} differs from its copy in the audit run (edited)")
        if record.entry.seq != i:
            problems.append(f"{record.key} carries number {record.entry.seq} (reordered)")
        if record.entry.prev != expected_prev:
            problems.append(f"{record.key} does not follow the entry before it (an entry was edited or removed)")
        expected_prev = text_hash(record.text)
    for key in sorted(set(copies) - {r.key for r in records}):
        problems.append(f"{key} is in the audit run but not on the registered model (deleted)")
    return problems


def alias_problems(client: MlflowClient, model_name: str, entries: list[AuditEntry]) -> list[str]:
    """Aliases the registry holds that the log does not account for (moved with plain MLflow), and back."""
    problems = []
    logged = {}
    for e in entries:
        if e.alias:
            logged[e.alias] = e.to_version
    held = dict(client.get_registered_model(model_name).aliases or {})
    for alias in sorted(set(logged) | set(held)):
        now_at = int(held[alias]) if alias in held else None
        if logged.get(alias) != now_at:
            problems.append(
                f"@{alias} is on version {now_at} but the log's last move put it on {logged.get(alias)} (moved "
                "outside the tool)"
            )
    return problems


def verify(client: MlflowClient, model_name: str, rebuild) -> list[str]:
    """Every problem of `model_name`'s history (empty: it verifies). `rebuild(version) -> sha256` rebuilds a version
    from its stored parts."""
    records = read_records(client, model_name)
    problems = chain_problems(records, _artifact_copies(client, model_name))
    entries = [r.entry for r in records if r.entry is not None]
    problems += alias_problems(client, model_name, entries)
    for alias, version in sorted(dict(client.get_registered_model(model_name).aliases or {}).items()):
        recorded = version_hash(client, model_name, int(version))
        logged = next((e.version_sha256 for e in reversed(entries) if e.alias == alias), None)
        if logged and recorded != logged:
            problems.append(f"version {version} (@{alias}) carries hash {recorded}, the log recorded {logged}")
        try:
            actual = rebuild(int(version))
        except ErasediffError as exc:
            problems.append(f"version {version} (@{alias}) does not rebuild: {exc}")
            continue
        if recorded and actual != recorded:
            problems.append(f"version {version} (@{alias}) rebuilds to {actual}, not its recorded {recorded}")
    return problems
