"""The `mlflow_env` experiment tracker flavor: ZenML's MLflow tracker, with the tracking server's credentials taken
from the process environment at run time and never stored.

ZenML's own MLflow tracker insists on one credential in the component's configuration for a remote server, and
its local store keeps that configuration on disk (zenml.db, readable base64 JSON), rotated credentials included.
MLflow itself reads MLFLOW_TRACKING_TOKEN or MLFLOW_TRACKING_USERNAME/PASSWORD from the environment, so this
flavor accepts a remote URI with no credential in its configuration, and refuses one that holds any. The
embedded default stack (pipelines/stacks/select.py) uses it; the cluster stacks (deploy/zenml/) use ZenML secrets
referenced by name. Register it with
`zenml experiment-tracker flavor register pipelines.stacks.mlflow_env_flavor.MLFlowEnvExperimentTrackerFlavor`.
"""

from pydantic import model_validator
from zenml.integrations.mlflow.flavors.mlflow_experiment_tracker_flavor import (
    MLFlowExperimentTrackerConfig,
    MLFlowExperimentTrackerFlavor,
)

FLAVOR = "mlflow_env"
ENVIRONMENT = ("MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


class MLFlowEnvExperimentTrackerConfig(MLFlowExperimentTrackerConfig):
    @model_validator(mode="after")
    def _ensure_exactly_one_authentication_method_if_necessary(self) -> "MLFlowEnvExperimentTrackerConfig":
        """Same name as ZenML's validator, so it replaces it: credentials must NOT be in the configuration."""
        if self._configured_authentication_methods():
            raise ValueError(
                f"the {FLAVOR} tracker takes credentials from the environment ({', '.join(ENVIRONMENT)}), never from "
                "its configuration"
            )
        return self


class MLFlowEnvExperimentTrackerFlavor(MLFlowExperimentTrackerFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[MLFlowEnvExperimentTrackerConfig]:
        return MLFlowEnvExperimentTrackerConfig
