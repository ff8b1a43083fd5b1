"""What an MLflow server's refusal means, in one line that says what to do.

A 403 from `mlflow server --app-name basic-auth` surfaces as an MlflowException whose text names neither the
permission nor the user; a reviewer reading "unexpected MlflowException" cannot act on it.
"""

import os

from mlflow.exceptions import MlflowException

from erasediff.util.errors import ErasediffError

DENIED = ("PERMISSION_DENIED", "UNAUTHENTICATED")


def refused(exc: MlflowException, action: str, model_name: str, permission: str) -> ErasediffError:
    """The error to raise for `exc`, raised while trying to `action` registered model `model_name`."""
    first = str(exc.message).splitlines()[0] if exc.message else type(exc).__name__
    user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this client"
    if exc.error_code == "PERMISSION_DENIED":
        return ErasediffError(
            f"the MLflow server refused {user} permission to {action} registered model {model_name}: it needs "
            f"{permission} on it (an admin grants it: deploy/mlflow/accounts.py, or MLflow's permission API)"
        )
    if exc.error_code == "UNAUTHENTICATED":
        return ErasediffError(
            f"the MLflow server did not accept the credentials of {user} (MLFLOW_TRACKING_USERNAME and "
            f"MLFLOW_TRACKING_PASSWORD) while trying to {action} registered model {model_name}"
        )
    return ErasediffError(f"cannot {action} registered model {model_name}: {first}")
