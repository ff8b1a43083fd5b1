"""The `kubeflow_gpu` orchestrator flavor: ZenML 0.98's Kubeflow orchestrator, with GPU steps that get GPUs.

ZenML 0.98's KubeflowOrchestratorSettings rebuilds `pod_settings` from its deprecated top-level
`node_selectors` key on every validation, and the compiler strips that key as unknown, so a step's
`pod_settings.node_selectors.accelerator` never reaches the KFP compiler and `gpu_count` is silently
dropped (tests/test_placement.py shows both). These settings keep a given `pod_settings`; the orchestrator
is ZenML's own otherwise. Register it with
`zenml orchestrator flavor register pipelines.stacks.kubeflow_gpu_flavor.KubeflowGPUOrchestratorFlavor`.
"""

from typing import Any

from pydantic import model_validator
from zenml.integrations.kubeflow.flavors.kubeflow_orchestrator_flavor import (
    KubeflowOrchestratorConfig,
    KubeflowOrchestratorFlavor,
    KubeflowOrchestratorSettings,
)
from zenml.integrations.kubeflow.orchestrators import KubeflowOrchestrator
from zenml.integrations.kubernetes.pod_settings import KubernetesPodSettings
from zenml.utils.pydantic_utils import before_validator_handler

FLAVOR = "kubeflow_gpu"


class KubeflowGPUOrchestratorSettings(KubeflowOrchestratorSettings):
    @model_validator(mode="before")
    @classmethod
    @before_validator_handler
    def _validate_and_migrate_pod_settings(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Same name as ZenML's validator, so it replaces it: the legacy key only fills an absent pod_settings."""
        legacy = data.pop("node_selectors", None)
        data.pop("node_affinity", None)
        if legacy and not data.get("pod_settings"):
            data["pod_settings"] = KubernetesPodSettings(node_selectors=legacy)
        if bool(data.get("client_username")) != bool(data.get("client_password")):
            raise ValueError("`client_username` and `client_password` both need to be set together.")
        return data


class KubeflowGPUOrchestratorConfig(KubeflowOrchestratorConfig, KubeflowGPUOrchestratorSettings):
    """ZenML's Kubeflow orchestrator config with the settings above."""


class KubeflowGPUOrchestrator(KubeflowOrchestrator):
    @property
    def settings_class(self) -> type[KubeflowGPUOrchestratorSettings]:
        return KubeflowGPUOrchestratorSettings


class KubeflowGPUOrchestratorFlavor(KubeflowOrchestratorFlavor):
    @property
    def name(self) -> str:
        return FLAVOR

    @property
    def config_class(self) -> type[KubeflowGPUOrchestratorConfig]:
        return KubeflowGPUOrchestratorConfig

    @property
    def implementation_class(self) -> type[KubeflowGPUOrchestrator]:
        return KubeflowGPUOrchestrator
