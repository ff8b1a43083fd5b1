"""`erasediff` command line: the library's commands (erasediff/cli.py) plus the compliance workflow:

erasediff request submit REQUEST.yaml [--stack S --run-config C]   run the pipeline; a promoted id is refused
erasediff request status ID [--json]                              queued, running, failed at step, gated out, promoted
erasediff request zenml-config REQUEST.yaml [--snapshot]          the ZenML run configuration for `zenml pipeline run`
                                                                  (--snapshot: for `zenml pipeline snapshot run` / REST)
erasediff request approve|reject ID [--comment T]                 sign-off on a candidate (registry.approval: required)
erasediff request rollback MODEL --to V --reason T                 @champion back to V; refused past an erasure in
force
erasediff request list [--json]                                   every request with its state
erasediff audit MODEL [--at TIME] [--log] [--verify] [--json]     who held @champion when, approved by whom, erasing
what
erasediff materialize models:/NAME@ALIAS OUT                      a registered version as a complete diffusers folder
"""

import argparse
import json
import os
import re
import sys
from pathlib import Path

import yaml

from erasediff import cli
from erasediff.request.schema import ID_PATTERN
from erasediff.util.errors import ErasediffError
from erasediff.util.exits import DONE, FAILED


def _submit(args: argparse.Namespace) -> int:
    from pipelines.run_request import prepare_workdir, run_request

    workdir = prepare_workdir(args.workdir, own_store=args.stack is None)
    return run_request(args.request, workdir, args.stack, args.run_config, refuse_promoted=True, verbose=args.verbose)


def _status(args: argparse.Namespace) -> int:
    from pipelines.request_status import request_status
    from pipelines.run_request import prepare_workdir, request_lock, tracking_uri

    if not re.fullmatch(ID_PATTERN, args.id):
        raise ErasediffError(f"request id {args.id!r} is not a request id (letters, digits, . _ -; at most 64)")
    workdir = prepare_workdir(args.workdir, own_store=not args.remote)
    status = request_status(
        args.id, tracking_uri(args.tracking_uri, workdir), None if args.remote else request_lock(workdir, args.id)
    )
    print(json.dumps(status.as_dict()) if args.json else status.line())
    return FAILED if status.state == "unknown" else DONE  # never 1: that means gated out


def _client(args: argparse.Namespace):
    """The MLflow client of the store the request commands read (the work folder's, or --tracking-uri /
    $MLFLOW_TRACKING_URI)."""
    from mlflow.tracking import MlflowClient

    from pipelines.run_request import prepare_workdir, tracking_uri

    local = not (args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))  # then ZenML's store is the work folder's
    workdir = prepare_workdir(args.workdir, own_store=local)  # where a request's notify alerter is looked up
    return MlflowClient(tracking_uri=tracking_uri(args.tracking_uri, workdir))


def _identity(client):
    from mlflow_adapters.identity import who_am_i

    return who_am_i(client.tracking_uri)


def _decision(args: argparse.Namespace) -> int:
    from mlflow_adapters.review import approve, check_inputs, reject, served_version
    from pipelines.notify import notify_review

    check_inputs(args.reviewer, args.comment, "--comment", required=False)  # before any store is opened
    client = _client(args)
    decide = approve if args.action == "approve" else reject
    entry = decide(client, args.id, _identity(client), args.reviewer, args.comment)
    moved = (
        f"@{entry.alias} now on version {entry.to_version}"
        if entry.to_version is not None
        else f"version {entry.from_version} rejected; no alias moved"
    )
    done = {"approve": "approved", "reject": "rejected"}[args.action]
    print(f"request {args.id}: {done} by {entry.actor} at {entry.time}: {moved}")
    notify_review(client, served_version(client, args.id), done, f"{done} by {entry.actor}: {moved}")
    return DONE


def _rollback(args: argparse.Namespace) -> int:
    from mlflow_adapters.review import check_inputs, rollback
    from pipelines.notify import notify_review

    check_inputs(args.reviewer, args.reason, "--reason", required=True)
    client = _client(args)
    entry = rollback(client, args.model, args.to, _identity(client), args.reviewer, args.reason, args.force, args.alias)
    moved = f"@{entry.alias} moved from version {entry.from_version} to {entry.to_version} by {entry.actor}"
    print(f"{args.model}: {moved} ({entry.action})")
    if entry.from_version is not None:  # the request taken out of service hears of it
        verdict = f"{moved}: {args.reason}"
        notify_review(client, client.get_model_version(args.model, entry.from_version), "rolled_back", verdict)
    return DONE


def _unlock(args: argparse.Namespace) -> int:
    from mlflow_adapters.promotion_lock import unlock

    held = unlock(_client(args), args.model)
    print(f"{args.model}: " + (f"promotion lock cleared (was held by {held.describe(0)})" if held else "not locked"))
    return DONE


def _list(args: argparse.Namespace) -> int:
    from pipelines.request_status import all_request_ids, request_status
    from pipelines.run_request import prepare_workdir, request_lock, tracking_uri

    workdir = prepare_workdir(args.workdir, own_store=True)
    uri = tracking_uri(args.tracking_uri, workdir)
    statuses = [request_status(rid, uri, request_lock(workdir, rid)) for rid in all_request_ids(uri)]
    if args.json:
        print(json.dumps([s.as_dict() for s in statuses]))
    for s in [] if args.json else statuses:
        print(f"{s.request_id:<32} {s.state:<30} {s.detail}")
    return DONE


def _printable(value: object) -> str:
    """A logged value as one line: an entry written before inputs were checked cannot forge lines."""
    return str(value).encode("unicode_escape").decode("ascii")


def _audit(args: argparse.Namespace) -> int:
    from mlflow_adapters.audit import alias_problems, now, parse_time, read_log, read_records
    from mlflow_adapters.review import champion_at

    client = _client(args)
    if args.verify:
        return _verify(client, args.model)
    records = read_records(client, args.model)
    for bad in [r for r in records if r.problem]:
        print(f"warning: {bad.problem}; skipped (erasediff audit {args.model} --verify)", file=sys.stderr)
    for drift in alias_problems(client, args.model, [r.entry for r in records if r.entry is not None]):
        print(_printable(f"warning: {drift} (erasediff audit {args.model} --verify)"), file=sys.stderr)
    if args.at or not args.log:
        answer = champion_at(client, args.model, parse_time(args.at) if args.at else now(), args.alias)
        if args.json:
            print(json.dumps(answer))
        elif answer["version"] is None:
            print(answer["detail"])
        else:
            why = f": {answer['reason']}" if answer["reason"] else ""
            print(
                _printable(
                    f"{args.model}@{args.alias} at {answer['at']}: version {answer['version']} since {answer['since']} "
                    f"({answer['action']} by {answer['by']}{why}); request {answer['request_id']} by "
                    f"{answer['requester']} erased {answer['erased']}"
                )
            )
    if args.log:
        entries = read_log(client, args.model)
        print(
            json.dumps([vars(e) for e in entries])
            if args.json
            else "\n".join(
                _printable(
                    f"{e.seq:>4} {e.time} {e.action:<18} @{e.alias or '-':<10} {e.from_version} -> {e.to_version} by "
                    f"{e.actor} ({e.request_id}): {e.reason}"
                )
                for e in entries
            )
        )
    return DONE


def _verify(client, model: str) -> int:
    """Exit 0 when the model's log (and its candidates model's, when there is one) verifies, else 1 naming the
    first problem of each."""
    from erasediff.util.hashing import folder_hash
    from erasediff.util.workdir import scratch_dir
    from mlflow_adapters.registry import registered_model_folder
    from mlflow_adapters.tracking import mlflow_tracking

    def rebuild(name: str):
        def version_sha(version: int) -> str:
            return folder_hash(registered_model_folder(f"models:/{name}/{version}", scratch_dir("verify-")))

        return version_sha

    with mlflow_tracking(client.tracking_uri):  # models:/ URIs resolve there; restored for this process's next command
        return _verified(client, model, rebuild)


def _verified(client, model: str, rebuild) -> int:
    from mlflow.exceptions import MlflowException

    from mlflow_adapters.audit import verify

    bad = 0
    for name in (model, f"{model}-candidates"):
        try:
            client.get_registered_model(name)
        except MlflowException:
            if name == model:
                raise ErasediffError(f"no registered model {model} in {client.tracking_uri}") from None
            continue
        problems = verify(client, name, rebuild(name))
        for problem in problems:
            print(_printable(f"{name}: {problem}"))
        print(
            f"{name}: "
            + ("audit log verified" if not problems else f"{len(problems)} problem(s); first: {problems[0]}")
        )
        bad += bool(problems)
    return 1 if bad else DONE


def _materialize(args: argparse.Namespace) -> int:
    import shutil

    from erasediff.util.atomic import atomic_dir
    from erasediff.util.hashing import folder_hash
    from erasediff.util.workdir import scratch_dir
    from mlflow_adapters.registry import MODELS_SCHEME, registered_hash, registered_model_folder
    from mlflow_adapters.tracking import mlflow_tracking

    if not args.spec.startswith(MODELS_SCHEME):
        raise ErasediffError(f"{args.spec} is not a registered model (models:/NAME@ALIAS or models:/NAME/VERSION)")
    download = scratch_dir("materialize-")
    try:
        with mlflow_tracking(_client(args).tracking_uri):  # models:/ resolves there; not inherited by a next command
            folder = registered_model_folder(args.spec, download)
            recorded = registered_hash(args.spec)
        with atomic_dir(args.out) as scratch:
            shutil.copytree(folder, scratch, dirs_exist_ok=True)
            actual = folder_hash(scratch)
            if recorded and actual != recorded:
                raise ErasediffError(
                    f"{args.spec} rebuilds to sha256 {actual}, not its recorded {recorded}; nothing written"
                )
    finally:
        shutil.rmtree(download, ignore_errors=True)
    print(f"{args.spec}: complete diffusers folder at {args.out} (sha256 {actual}, as recorded)")
    return DONE


def _zenml_config(args: argparse.Namespace) -> int:
    from erasediff.request.schema import load_request
    from pipelines.run_request import zenml_run_config, zenml_snapshot_run_config

    config = (zenml_snapshot_run_config if args.snapshot else zenml_run_config)(load_request(args.request))
    yaml.safe_dump(config, sys.stdout, sort_keys=False)
    return 0


def _store_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--workdir",
        type=Path,
        help="the work folder the requests were submitted with (default $ERASEDIFF_HOME or ./.erasediff)",
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else the work folder's SQLite store)"
    )


def add_request_commands(sub: argparse._SubParsersAction) -> None:
    from pipelines.run_request import add_run_arguments

    requests = sub.add_parser("request", help="erasure requests: submit one, see where one stands").add_subparsers(
        dest="action", required=True
    )
    p = requests.add_parser(
        "submit", help="run the erasure pipeline for a request (exit 0 promoted, 1 gated out, 2 refused or failed)"
    )
    add_run_arguments(p)
    p.set_defaults(func=_submit)
    p = requests.add_parser("status", help="a request's state from ZenML's runs and the MLflow registry")
    p.add_argument("id")
    p.add_argument(
        "--workdir",
        type=Path,
        help="the work folder the request was submitted with (default $ERASEDIFF_HOME or ./.erasediff)",
    )
    p.add_argument(
        "--remote", action="store_true", help="read the ZenML server you are logged in to, not the work folder's store"
    )
    p.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else the work folder's SQLite store)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of one line")
    p.set_defaults(func=_status)
    p = requests.add_parser(
        "zenml-config", help="print the ZenML run configuration of a request (for zenml pipeline run / snapshots)"
    )
    p.add_argument("request", type=Path)
    p.add_argument(
        "--snapshot",
        action="store_true",
        help="for running a snapshot (zenml pipeline snapshot run, ZenML's REST API): "
        "the request as step parameters, since ZenML refuses pipeline parameters there",
    )
    p.set_defaults(func=_zenml_config)
    for action, what in (
        ("approve", "move @champion to a request's candidate version (the reviewer must not be the requester)"),
        ("reject", "record a refusal of a request's candidate; @champion is untouched"),
    ):
        p = requests.add_parser(action, help=what)
        p.add_argument("id")
        p.add_argument(
            "--reviewer",
            help="on a server with authentication, optional and must be you; without, your name (recorded as "
            "unauthenticated)",
        )
        p.add_argument("--comment", default="")
        _store_arguments(p)
        p.set_defaults(func=_decision)
    p = requests.add_parser(
        "rollback", help="move @champion back to an earlier version (refused past an erasure still in force)"
    )
    p.add_argument("model")
    p.add_argument("--to", type=int, required=True, help="the version to serve again")
    p.add_argument("--reviewer", help="as for approve")
    p.add_argument("--reason", required=True)
    p.add_argument("--force", action="store_true", help="roll back past an erasure in force (recorded with the reason)")
    p.add_argument("--alias", default="champion")
    _store_arguments(p)
    p.set_defaults(func=_rollback)
    p = requests.add_parser("list", help="every request in the stores with its state")
    p.add_argument("--json", action="store_true")
    _store_arguments(p)
    p.set_defaults(func=_list)
    p = sub.add_parser("audit", help="which version held @champion at a time, who moved it there, and what it erased")
    p.add_argument("model")
    p.add_argument("--at", help="ISO 8601 time or date (UTC unless a zone is given); default now")
    p.add_argument("--alias", default="champion")
    p.add_argument("--log", action="store_true", help="print the whole alias history")
    p.add_argument(
        "--verify",
        action="store_true",
        help="check the hash chain, both copies of the log, the aliases and the champion's content hash "
        "(exit 1: failed)",
    )
    p.add_argument("--json", action="store_true")
    _store_arguments(p)
    p.set_defaults(func=_audit)
    p = sub.add_parser("unlock", help="clear a model's promotion lock (after checking that its holder is gone)")
    p.add_argument("model")
    _store_arguments(p)
    p.set_defaults(func=_unlock)
    p = sub.add_parser(
        "materialize", help="write a registered version as a complete diffusers folder (rebuilt from its stored parts)"
    )
    p.add_argument("spec", help="models:/NAME@ALIAS or models:/NAME/VERSION")
    p.add_argument("out", type=Path, help="a new folder")
    _store_arguments(p)
    p.set_defaults(func=_materialize)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, add_request_commands)


if __name__ == "__main__":
    sys.exit(main())
