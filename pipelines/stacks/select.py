"""The stack a run goes to: the embedded default (ZenML's local orchestrator and artifact store plus an MLflow
experiment tracker), created on first use, one per tracking URI; or a named stack the operator registered
(k8s-gpu, kubeflow-gpu: deploy/zenml/).
"""

import os
from pathlib import Path

from erasediff.util.errors import ErasediffError
from erasediff.util.hashing import config_hash
from pipelines.stacks.mlflow_env_flavor import FLAVOR, MLFlowEnvExperimentTrackerFlavor

REMOTE_PREFIXES = ("http://", "https://")


def check_credentials(tracking_uri: str) -> None:
    """A tracking server needs a credential in the environment (read by MLflow at run time; never written anywhere)."""
    if not tracking_uri.startswith(REMOTE_PREFIXES):
        return
    if not (
        os.environ.get("MLFLOW_TRACKING_TOKEN")
        or (os.environ.get("MLFLOW_TRACKING_USERNAME") and os.environ.get("MLFLOW_TRACKING_PASSWORD"))
    ):
        raise ErasediffError(
            f"MLflow server {tracking_uri} needs MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD in the "
            "environment"
        )


def _set_source_root() -> None:
    """Steps resolve as `steps.*` from the project root, however the process was started (run.py, pytest, -c)."""
    from zenml.utils import source_utils

    source_utils.set_custom_source_root(str(Path(__file__).resolve().parents[2]))


def use_stack(name: str) -> str:
    """Activate a stack the operator registered (deploy/zenml/*.sh); return its MLflow tracker's URI."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    _set_source_root()
    client = Client()
    try:
        stack = client.get_stack(name)
    except KeyError:
        raise ErasediffError(
            f"no ZenML stack named {name!r} in {client.zen_store.url}: register it with deploy/zenml/ "
            "(deploy/README.md)"
        ) from None
    trackers = stack.components.get(StackComponentType.EXPERIMENT_TRACKER)
    if not trackers:
        raise ErasediffError(f"ZenML stack {name!r} has no MLflow experiment tracker")
    client.activate_stack(stack.id)
    return trackers[0].configuration["tracking_uri"]


def ensure_local_stack(tracking_uri: str) -> str:
    """Activate (creating if needed) the local stack that tracks to `tracking_uri`; return its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    _set_source_root()
    client = Client()
    check_credentials(tracking_uri)
    suffix = config_hash(tracking_uri, 8)
    tracker, stack = f"erasediff-mlflow-env-{suffix}", f"erasediff-local-{suffix}"
    if FLAVOR not in {f.name for f in client.get_flavors_by_type(StackComponentType.EXPERIMENT_TRACKER)}:
        client.create_flavor(
            f"{MLFlowEnvExperimentTrackerFlavor.__module__}.{MLFlowEnvExperimentTrackerFlavor.__name__}",
            StackComponentType.EXPERIMENT_TRACKER,
        )
    try:
        client.get_stack_component(StackComponentType.EXPERIMENT_TRACKER, tracker)
    except KeyError:
        client.create_stack_component(
            tracker, FLAVOR, StackComponentType.EXPERIMENT_TRACKER, {"tracking_uri": tracking_uri}
        )
    try:
        existing = client.get_stack(stack)
        if (
            existing.components[StackComponentType.EXPERIMENT_TRACKER][0].name != tracker
        ):  # made by an earlier version, credentials stored
            client.update_stack(stack, component_updates={StackComponentType.EXPERIMENT_TRACKER: [tracker]})
    except KeyError:
        client.create_stack(
            stack,
            components={
                StackComponentType.ORCHESTRATOR: "default",
                StackComponentType.ARTIFACT_STORE: "default",
                StackComponentType.EXPERIMENT_TRACKER: tracker,
            },
        )
    if client.active_stack_model.name != stack:
        client.activate_stack(stack)
    return stack
