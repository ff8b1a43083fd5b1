"""Per-step placement on Kubernetes, proven offline (no cluster here: nothing is submitted).

The erasure pipeline is compiled by ZenML against a stack with the real Kubernetes (or Kubeflow)
orchestrator flavor and our run config; then the unlearn step's pod is rendered with the calls ZenML's
Kubernetes orchestrator makes for a step pod, and a pure-KFP pipeline is assembled from ZenML's own
Kubeflow component and resource code and compiled by the KFP compiler.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kfp")
pytest.importorskip("kubernetes")

from deploy.check_manifests import manifest_errors  # noqa: E402
from erasediff.request.schema import load_request

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

ROOT = Path(__file__).parents[1]
GPU_STEPS, CPU_STEPS = {"curate_sets", "unlearn_model", "evaluate_models"}, {"load_base_model", "gate", "promote"}
KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: gpu, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: ops, user: {token: placeholder}}]
contexts: [{name: gpu-cluster, context: {cluster: gpu, user: ops, namespace: erasediff}}]
current-context: gpu-cluster
"""


@pytest.fixture(scope="module")
def kubeconfig(tmp_path_factory) -> Iterator[Path]:
    """A kubeconfig naming a context (a file only; no API server is contacted)."""
    path = tmp_path_factory.mktemp("kube") / "config"
    path.write_text(KUBECONFIG)
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(path)
    yield path
    os.environ.pop("KUBECONFIG") if old is None else os.environ.__setitem__("KUBECONFIG", old)


def kubeflow_gpu_flavor() -> str:
    """Register the project's `kubeflow_gpu` flavor (as deploy/zenml/kubeflow-gpu-stack.sh does); return its name."""
    from zenml.client import Client
    from zenml.enums import StackComponentType

    from pipelines.stacks.kubeflow_gpu_flavor import FLAVOR

    client = Client()
    if FLAVOR not in {f.name for f in client.get_flavors_by_type(StackComponentType.ORCHESTRATOR).items}:
        client.create_flavor(
            "pipelines.stacks.kubeflow_gpu_flavor.KubeflowGPUOrchestratorFlavor", StackComponentType.ORCHESTRATOR
        )
    return FLAVOR


def compile_on(flavor: str, orchestrator_config: dict, run_config: Path):
    """(snapshot, orchestrator) of the erasure pipeline compiled for a stack with this orchestrator flavor."""
    from zenml.client import Client
    from zenml.config.compiler import Compiler
    from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
    from zenml.enums import StackComponentType as T

    from pipelines.stacks.select import ensure_local_stack

    client = Client()
    local = ensure_local_stack(
        "sqlite:////tmp/erasediff-placement-never-written.db"
    )  # only its tracker is reused; nothing is logged
    tracker = client.active_stack_model.components[T.EXPERIMENT_TRACKER][0].name
    name = f"placement-{flavor}-{uuid.uuid4().hex[:6]}"
    client.create_stack_component(name, flavor, T.ORCHESTRATOR, orchestrator_config)
    client.create_stack(
        name, components={T.ORCHESTRATOR: name, T.ARTIFACT_STORE: "default", T.EXPERIMENT_TRACKER: tracker}
    )
    client.activate_stack(name)
    try:
        from pipelines.run_request import configured_pipeline

        request = load_request(ROOT / "configs/request_digits_forget_3.yaml")
        pipeline = configured_pipeline(request, run_config)  # as the runner starts it
        pipeline.prepare(request=request.as_params())
        config = PipelineRunConfiguration.model_validate(yaml.safe_load(run_config.read_text()))
        stack = client.active_stack
        return Compiler().compile(pipeline=pipeline, stack=stack, run_configuration=config), stack.orchestrator
    finally:
        client.activate_stack(local)


def test_kubernetes_orchestrator_renders_the_unlearn_pod_on_a_gpu_node(kubeconfig) -> None:
    from kubernetes import client as k8s
    from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration
    from zenml.integrations.kubernetes import kube_utils
    from zenml.integrations.kubernetes.manifest_utils import build_pod_manifest

    snapshot, orchestrator = compile_on(
        "kubernetes",
        {"kubernetes_context": "gpu-cluster", "kubernetes_namespace": "erasediff"},
        ROOT / "configs/k8s_gpu.yaml",
    )
    assert snapshot.step_configurations["unlearn_model"].config.retry.max_retries == 2
    from erasediff.util.code_version import code_version

    docker = snapshot.pipeline_configuration.docker_settings  # the run config's image, with the commit as build arg
    assert docker.dockerfile == "deploy/Dockerfile" and docker.install_stack_requirements is False
    options = docker.build_config.build_options  # as a docker CLI (or SDK: buildargs) image builder passes them
    assert options.to_docker_cli_options() == ["--build-arg", f"CODE_VERSION={code_version()}"]

    def pod(step: str) -> dict:
        settings = orchestrator.get_settings(snapshot.step_configurations[step])  # KubernetesOrchestratorSettings
        manifest = build_pod_manifest(  # as kubernetes_orchestrator_entrypoint.py builds a step pod
            pod_name=None,
            image_name="registry.example.com/erasediff:0.1.0",
            command=StepEntrypointConfiguration.get_entrypoint_command(),
            args=StepEntrypointConfiguration.get_entrypoint_arguments(step_name=step, snapshot_id=uuid.uuid4()),
            env={},
            privileged=settings.privileged,
            pod_settings=kube_utils.apply_default_resource_requests(memory="400Mi", pod_settings=settings.pod_settings),
            service_account_name=settings.step_pod_service_account_name or settings.service_account_name,
        )
        return k8s.ApiClient().sanitize_for_serialization(manifest)

    unlearn = pod("unlearn_model")
    assert manifest_errors(unlearn, "rendered unlearn pod") == []
    spec, (container,) = unlearn["spec"], unlearn["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert container["securityContext"]["runAsNonRoot"] is True

    for step in CPU_STEPS:  # loading, gating and promotion stay off the GPU pool
        rendered = pod(step)
        limits = rendered["spec"]["containers"][0]["resources"]["limits"]
        assert "nvidia.com/gpu" not in limits and "tolerations" not in rendered["spec"], step


def test_kubeflow_orchestrator_compiles_accelerator_settings_into_kfp_yaml(kubeconfig, tmp_path: Path) -> None:
    """ZenML's Kubeflow orchestrator builds its KFP pipeline inside a method that also submits it, so the
    pipeline is assembled here from the same pieces: ZenML's container component, ZenML's `accelerator`
    node-selector rule, and ZenML's `_configure_container_resources`; then KFP compiles it."""
    from kfp import compiler, dsl
    from zenml.entrypoints.step_entrypoint_configuration import StepEntrypointConfiguration

    snapshot, orchestrator = compile_on(
        kubeflow_gpu_flavor(),
        {"kubernetes_context": "gpu-cluster", "user_namespace": "team"},
        ROOT / "configs/kubeflow_gpu.yaml",
    )
    steps = snapshot.step_configurations
    components, constraint = {}, None
    for name, step in steps.items():
        components[name] = orchestrator._create_dynamic_component(
            "registry.example.com/erasediff:0.1.0",
            StepEntrypointConfiguration.get_entrypoint_command(),
            StepEntrypointConfiguration.get_entrypoint_arguments(step_name=name, snapshot_id=uuid.uuid4()),
            name,
        )
        pod_settings = orchestrator.get_settings(step).pod_settings
        if pod_settings and "accelerator" in pod_settings.node_selectors:
            constraint = ("accelerator", pod_settings.node_selectors["accelerator"])

    @dsl.pipeline(name="erasure-pipeline")
    def erasure() -> None:
        tasks = {}
        for name, component in components.items():
            task = component().set_display_name(name).set_caching_options(enable_caching=False)
            task.after(*[tasks[up] for up in steps[name].spec.upstream_steps])
            tasks[name] = orchestrator._configure_container_resources(
                task, steps[name].config.resource_settings, constraint
            )

    compiler.Compiler().compile(erasure, str(tmp_path / "erasure.yaml"))
    executors = yaml.safe_load((tmp_path / "erasure.yaml").read_text())["deploymentSpec"]["executors"]
    resources = {name: executors[f"exec-{name.replace('_', '-')}"]["container"].get("resources", {}) for name in steps}
    for name in GPU_STEPS:
        accelerator = resources[name]["accelerator"]
        assert (accelerator["resourceType"], accelerator["resourceCount"]) == ("nvidia.com/gpu", "1"), name
        assert float(resources[name]["resourceCpuLimit"]) == 16, name
    for name in CPU_STEPS:
        assert "accelerator" not in resources[name] and float(resources[name]["resourceCpuLimit"]) == 2, name


def test_stock_kubeflow_flavor_drops_gpu_requests_and_memory_breaks_the_compile(kubeconfig, tmp_path: Path) -> None:
    """Why the kubeflow-gpu stack uses the `kubeflow_gpu` flavor and configs/kubeflow_gpu.yaml sets no memory, pinned as
    ZenML 0.98 behaves (a failure here means ZenML changed, and the workarounds can go):
    - the stock settings discard `pod_settings`, so no step gets the accelerator selector and gpu_count is lost;
    - ResourceSettings.get_memory() (a float) reaches KFP's set_memory_limit, which takes a string."""
    from kfp import dsl
    from zenml.config import ResourceSettings

    snapshot, orchestrator = compile_on(
        "kubeflow", {"kubernetes_context": "gpu-cluster"}, ROOT / "configs/kubeflow_gpu.yaml"
    )
    assert snapshot.step_configurations["unlearn_model"].config.resource_settings.gpu_count == 1
    assert orchestrator.get_settings(snapshot.step_configurations["unlearn_model"]).pod_settings.node_selectors == {}
    component = orchestrator._create_dynamic_component("registry.example.com/erasediff:0.1.0", ["python"], [], "probe")

    with pytest.raises(TypeError, match="float"):

        @dsl.pipeline(name="memory")
        def memory() -> None:
            orchestrator._configure_container_resources(component(), ResourceSettings(memory="8GB"), None)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--stack", "no-such-stack"], "error: no ZenML stack named 'no-such-stack'"),
        (
            ["--run-config", "configs/no_such_run_config.yaml"],
            "error: run config not found: configs/no_such_run_config.yaml",
        ),
    ],
)
def test_runner_refuses_an_unknown_stack_or_run_config(args: list[str], message: str, tmp_path: Path, capsys) -> None:
    from pipelines.run_request import FAILED, main

    assert main([str(ROOT / "configs/request_digits_forget_3.yaml"), "--workdir", str(tmp_path), *args]) == FAILED
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err
