"""The four MLflow accounts of an erasure model and their permissions, on `mlflow server --app-name basic-auth`.

    export MLFLOW_TRACKING_USERNAME=admin MLFLOW_TRACKING_PASSWORD=...        # the server's admin
    export ERASEDIFF_PIPELINE_PASSWORD=... ERASEDIFF_REQUESTER_PASSWORD=...
    export ERASEDIFF_REVIEWER_PASSWORD=... ERASEDIFF_SERVING_PASSWORD=...
    python deploy/mlflow/accounts.py http://mlflow:5000 erasediff-sd [--automatic]

| account   | `<model>-candidates` | `<model>` | audit experiment | for |
|-----------|----------------------|-----------|------------------|-----|
| pipeline  | EDIT                 | READ      | EDIT             | runs the pipeline, registers candidates |
| requester | READ                 | READ      | READ             | files requests, reads their state |
| reviewer  | MANAGE               | EDIT      | EDIT             | approves, rejects, rolls back |
| serving   | READ                 | READ      | READ             | loads `models:/<model>@champion` |

The reviewer holds MANAGE on the candidates model only because MLflow asks for it to delete an alias (a
decided version's `@candidate` is taken off); on `<model>`, EDIT moves `@champion`. With `--automatic`
(requests with `registry.approval: automatic`) the pipeline also gets EDIT on `<model>`: any run whose gates
pass then moves `@champion` with no person in the loop. The models, their promotion locks and the audit
experiment are created here, by the admin, so that no other account owns (MANAGE) them. The server's
`default_permission` must be READ (deploy/mlflow/basic_auth.ini.template). Passwords come from the environment
only; nothing is written to disk. Idempotent: an existing user keeps its password, permissions are re-granted.
"""

import argparse
import os
import sys

from mlflow.exceptions import MlflowException, RestException
from mlflow.server.auth.client import AuthServiceClient
from mlflow.tracking import MlflowClient

ACCOUNTS = ("pipeline", "requester", "reviewer", "serving")
AUDIT_EXPERIMENT = "erasediff-audit"  # mlflow_adapters/audit.py
LOCK_SUFFIX = ".promotion-lock"  # mlflow_adapters/promotion_lock.py


def permissions(model: str, automatic: bool) -> dict[str, dict[tuple[str, str], str]]:
    """Per account: (resource type, registered model name or experiment name) -> permission."""
    candidates = f"{model}-candidates"
    reviewer_only = "EDIT" if automatic else "READ"
    return {
        "pipeline": {
            ("registered_model", candidates): "EDIT",
            ("registered_model", candidates + LOCK_SUFFIX): "EDIT",
            ("registered_model", model): reviewer_only,
            ("registered_model", model + LOCK_SUFFIX): reviewer_only,
            ("experiment", AUDIT_EXPERIMENT): "EDIT",
        },
        "requester": {},
        "reviewer": {
            ("registered_model", candidates): "MANAGE",  # MLflow asks MANAGE to take @candidate off a decided version
            ("registered_model", candidates + LOCK_SUFFIX): "EDIT",
            ("registered_model", model): "EDIT",
            ("registered_model", model + LOCK_SUFFIX): "EDIT",
            ("experiment", AUDIT_EXPERIMENT): "EDIT",
        },
        "serving": {},
    }


def _create_model(client: MlflowClient, name: str, tags: dict[str, str] | None = None) -> None:
    try:
        client.create_registered_model(name, tags=tags)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise


def set_up(uri: str, model: str, passwords: dict[str, str], automatic: bool = False, usernames=None) -> dict:
    """Create the users, the models, their locks and the audit experiment, and grant the permissions (as admin).
    Returns the usernames by account."""
    names = usernames or {a: f"erasediff-{a}" for a in ACCOUNTS}
    auth, client = AuthServiceClient(uri), MlflowClient(tracking_uri=uri)
    for account in ACCOUNTS:
        try:
            auth.create_user(names[account], passwords[account])
        except RestException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
    for name in (model, f"{model}-candidates"):
        _create_model(client, name)
        _create_model(client, name + LOCK_SUFFIX, {"erasediff.kind": "promotion-lock", "model": name})
        client.set_registered_model_tag(name, "erasediff.promotion_lock", name + LOCK_SUFFIX)
    experiment = client.get_experiment_by_name(AUDIT_EXPERIMENT)
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(AUDIT_EXPERIMENT)
    for account, grants in permissions(model, automatic).items():
        for (kind, name), permission in grants.items():
            auth.grant_user_permission(
                names[account], kind, experiment_id if kind == "experiment" else name, permission
            )
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tracking_uri")
    parser.add_argument(
        "model", help="the registered model that serving reads (its candidates model is <model>-candidates)"
    )
    parser.add_argument(
        "--automatic", action="store_true", help="the pipeline may move @champion (approval: automatic)"
    )
    args = parser.parse_args(argv)
    missing = [
        f"ERASEDIFF_{a.upper()}_PASSWORD" for a in ACCOUNTS if not os.environ.get(f"ERASEDIFF_{a.upper()}_PASSWORD")
    ]
    if missing or not os.environ.get("MLFLOW_TRACKING_USERNAME"):
        print(
            f"error: set {', '.join(missing or ['MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (admin)'])}",
            file=sys.stderr,
        )
        return 2
    try:
        names = set_up(
            args.tracking_uri,
            args.model,
            {a: os.environ[f"ERASEDIFF_{a.upper()}_PASSWORD"] for a in ACCOUNTS},
            args.automatic,
        )
    except MlflowException as exc:
        print(f"error: {str(exc.message).splitlines()[0]}", file=sys.stderr)
        return 2
    for account, name in names.items():
        print(f"{account:<10} {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
