"""The embedded default stack: ZenML's local orchestrator and artifact store plus an MLflow experiment tracker.

Created on first use (no manual `zenml` commands); one tracker and stack per tracking URI, found by name after that.
"""

import os
from pathlib import Path

from erasediff.errors import ErasediffError
from erasediff.hashing import config_hash

REMOTE_PREFIXES = ("http://", "https://")


def _credentials(tracking_uri: str) -> dict[str, str]:
    """ZenML requires exactly one auth method for a remote MLflow server; take it from the environment, never from files."""
    if not tracking_uri.startswith(REMOTE_PREFIXES):
        return {}
    if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
        return {"tracking_token": token}
    user, password = os.environ.get("MLFLOW_TRACKING_USERNAME"), os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if user and password:
        return {"tracking_username": user, "tracking_password": password}
    raise ErasediffError(f"MLflow server {tracking_uri} needs MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD in the environment")


def ensure_local_stack(tracking_uri: str) -> str:
    """Activate (creating if needed) the local stack that tracks to `tracking_uri`; return its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType
    from zenml.utils import source_utils

    # Steps resolve as `steps.*` from the project root, however the process was started (run.py, pytest, -c).
    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[1]))
    client = Client()
    suffix = config_hash(tracking_uri, 8)
    tracker, stack = f"erasediff-mlflow-{suffix}", f"erasediff-local-{suffix}"
    try:
        client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, tracker)
    except KeyError:
        client.create_stack_component(tracker, "mlflow", StackComponentType.EXPERIMENT_TRACKER,
                                      {"tracking_uri": tracking_uri, **_credentials(tracking_uri)})
    try:
        client.get_stack(stack)
    except KeyError:
        client.create_stack(stack, components={
            StackComponentType.ORCHESTRATOR: "default", StackComponentType.ARTIFACT_STORE: "default", StackComponentType.EXPERIMENT_TRACKER: tracker,
        })
    if client.active_stack_model.name != stack:
        client.activate_stack(stack)
    return stack
