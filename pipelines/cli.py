"""`erasediff` command line: the library's commands (erasediff/cli.py) plus the compliance workflow:

    erasediff request submit REQUEST.yaml [--stack S --run-config C]   run the pipeline; a promoted id is refused
    erasediff request status ID [--json]                              queued, running, failed at step, gated out, promoted
    erasediff request zenml-config REQUEST.yaml [--snapshot]          the ZenML run configuration for `zenml pipeline run`
                                                                      (--snapshot: for `zenml pipeline snapshot run` / REST)
"""

import argparse
import json
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
    status = request_status(args.id, tracking_uri(args.tracking_uri, workdir), None if args.remote else request_lock(workdir, args.id))
    print(json.dumps(status.as_dict()) if args.json else status.line())
    return FAILED if status.state == "unknown" else DONE  # never 1: that means gated out


def _zenml_config(args: argparse.Namespace) -> int:
    from erasediff.request.schema import load_request
    from pipelines.run_request import zenml_run_config, zenml_snapshot_run_config

    config = (zenml_snapshot_run_config if args.snapshot else zenml_run_config)(load_request(args.request))
    yaml.safe_dump(config, sys.stdout, sort_keys=False)
    return 0


def add_request_commands(sub: argparse._SubParsersAction) -> None:
    from pipelines.run_request import add_run_arguments

    requests = sub.add_parser("request", help="erasure requests: submit one, see where one stands").add_subparsers(dest="action", required=True)
    p = requests.add_parser("submit", help="run the erasure pipeline for a request (exit 0 promoted, 1 gated out, 2 refused or failed)")
    add_run_arguments(p)
    p.set_defaults(func=_submit)
    p = requests.add_parser("status", help="a request's state from ZenML's runs and the MLflow registry")
    p.add_argument("id")
    p.add_argument("--workdir", type=Path, help="the work folder the request was submitted with (default $ERASEDIFF_HOME or ./.erasediff)")
    p.add_argument("--remote", action="store_true", help="read the ZenML server you are logged in to, not the work folder's store")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, else the work folder's SQLite store)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of one line")
    p.set_defaults(func=_status)
    p = requests.add_parser("zenml-config", help="print the ZenML run configuration of a request (for zenml pipeline run / snapshots)")
    p.add_argument("request", type=Path)
    p.add_argument("--snapshot", action="store_true", help="for running a snapshot (zenml pipeline snapshot run, ZenML's REST API): "
                   "the request as step parameters, since ZenML refuses pipeline parameters there")
    p.set_defaults(func=_zenml_config)


def main(argv: list[str] | None = None) -> int:
    return cli.main(argv, add_request_commands)


if __name__ == "__main__":
    sys.exit(main())
