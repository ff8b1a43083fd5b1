"""deploy/ proven offline (no cluster, no Docker engine here): every manifest validates against the Kubernetes
object schemas and the project's rules, the checker catches what it claims to, the image is pinned and
non-root, and the ZenML stack scripts register working stacks in a throwaway ZenML store."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytest.importorskip("kubernetes")

from deploy.check_manifests import check, load, manifest_errors, manifest_files  # noqa: E402

pytestmark = pytest.mark.integration  # minutes: left out of `make test-fast`

ROOT = Path(__file__).parents[1]
DEPLOY = ROOT / "deploy"


def test_every_manifest_is_valid_and_the_components_are_there() -> None:
    files = manifest_files()
    assert check(files) == []
    kinds = {(d["kind"], d["metadata"]["name"]) for f in files for d in load(f)}
    assert {
        ("StatefulSet", "mlflow-postgres"),
        ("Deployment", "mlflow"),
        ("Service", "mlflow"),
        ("Deployment", "erasediff-champion"),
        ("PersistentVolumeClaim", "erasediff-work"),
    } <= kinds


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (for kustomize) is not installed")
@pytest.mark.parametrize("folder", ["k8s", "mlflow", "serving"])
def test_kustomize_output_is_valid_and_points_at_the_registry(folder: str, tmp_path: Path) -> None:
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(DEPLOY / folder)], capture_output=True, text=True, check=True
    ).stdout
    (tmp_path / "out.yaml").write_text(rendered)
    assert check([tmp_path / "out.yaml"]) == []
    images = [
        c["image"]
        for d in yaml.safe_load_all(rendered)
        if d["kind"] in ("Deployment", "StatefulSet")
        for c in d["spec"]["template"]["spec"]["containers"]
    ]
    assert all(i.startswith(("registry.example.com/", "postgres:")) for i in images), images


def mlflow_deployment() -> dict:
    return next(d for d in load(DEPLOY / "mlflow/mlflow-server.yaml") if d["kind"] == "Deployment")


def mutate(path: list, value: object) -> dict:
    doc = mlflow_deployment()
    node = doc
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


CONTAINER = ["spec", "template", "spec", "containers", 0]
BROKEN = {
    "latest tag": (CONTAINER + ["image"], "mlflow:latest", "not pinned"),
    "untagged image": (CONTAINER + ["image"], "registry.example.com/mlflow", "not pinned"),
    "root user": (["spec", "template", "spec", "securityContext", "runAsUser"], 0, "non-root"),
    "no limits": (CONTAINER + ["resources", "limits"], None, "limits must set cpu and memory"),
    "privilege escalation": (
        CONTAINER + ["securityContext", "allowPrivilegeEscalation"],
        True,
        "allowPrivilegeEscalation",
    ),
    "unknown field": (CONTAINER + ["imagePullPolicyy"], "Always", "not a field of V1Container"),
    "wrong type": (["spec", "replicas"], "two", "expected int"),
    "missing required field": (CONTAINER + ["name"], None, "must not be `None`"),
    "literal password": (CONTAINER + ["env", 1], {"name": "DB_PASSWORD", "value": "hunter2"}, "literal value"),
}


@pytest.mark.parametrize("case", BROKEN)
def test_the_checker_catches(case: str) -> None:
    path, value, message = BROKEN[case]
    assert manifest_errors(mlflow_deployment(), "ok") == []
    errors = manifest_errors(mutate(path, value), case)
    assert any(message in e for e in errors), errors


def test_a_secret_with_values_is_refused() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlflow-db"},
        "stringData": {"password": "hunter2"},
    }
    assert any("Secret with values" in e for e in manifest_errors(secret, "secret"))


def test_mlflow_server_uses_postgres_an_object_store_and_named_secrets() -> None:
    server = mlflow_deployment()
    container = server["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container["args"])
    assert (
        "--backend-store-uri=postgresql://" in args
        and "--serve-artifacts" in args
        and "--artifacts-destination=$(ARTIFACT_DESTINATION)" in args
    )
    secrets = {
        e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert secrets == {"mlflow-db", "mlflow-artifacts", "mlflow-auth"}
    postgres = next(d for d in load(DEPLOY / "mlflow/postgres.yaml") if d["kind"] == "StatefulSet")
    assert postgres["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    serving = next(d for d in load(DEPLOY / "serving/champion.yaml") if d["kind"] == "Deployment")
    assert "--model-uri=models:/$(MODEL_NAME)@champion" in serving["spec"]["template"]["spec"]["containers"][0]["args"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    text = path.read_text().replace("\\\n", " ")
    return [
        (line.split()[0].upper(), line.split(maxsplit=1)[1])
        for line in text.splitlines()
        if line.strip() and not line.startswith("#")
    ]


@pytest.mark.parametrize("dockerfile", ["Dockerfile", "mlflow/Dockerfile"])
def test_images_are_pinned_and_end_as_a_non_root_user(dockerfile: str) -> None:
    steps = dockerfile_instructions(DEPLOY / dockerfile)
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    bases = [args.get(b.strip("${}"), b) for kind, b in steps if kind == "FROM" for b in [b.split()[0]]]
    assert bases and all(":" in b and not b.endswith(":latest") for b in bases), bases
    users = [a for kind, a in steps if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    assert [kind for kind, _ in steps].index("USER") < max(
        i for i, (kind, _) in enumerate(steps) if kind in ("CMD", "ENTRYPOINT")
    )


def test_the_image_copies_every_package_the_project_ships() -> None:
    import tomllib

    include = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*") for pattern in include}
    copied = {a.split()[-1] for kind, a in dockerfile_instructions(DEPLOY / "Dockerfile") if kind == "COPY"}
    assert packages <= copied, packages - copied


def test_run_configs_build_the_image_from_the_dockerfile() -> None:
    from zenml.config import DockerSettings

    for name in ("k8s_gpu.yaml", "kubeflow_gpu.yaml"):
        docker = DockerSettings.model_validate(
            yaml.safe_load((ROOT / "configs" / name).read_text())["settings"]["docker"]
        )
        assert (
            (ROOT / docker.dockerfile).is_file()
            and docker.build_context_root == "."
            and docker.install_stack_requirements is False
        )
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".erasediff", ".git"} <= set(ignored)


def test_a_stack_script_without_its_settings_stops_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBE_CONTEXT", "MLFLOW_TRACKING_URI")}
    done = subprocess.run(["bash", str(DEPLOY / "zenml/k8s-gpu-stack.sh")], env=env, capture_output=True, text=True)
    assert (
        done.returncode == 2
        and done.stderr.strip() == "error: set KUBE_CONTEXT in the environment (see deploy/README.md)"
    )


def test_stack_scripts_register_both_gpu_stacks(tmp_path: Path) -> None:
    """The scripts run for real against a throwaway ZenML store (a kubeconfig file names the context; nothing is
    contacted)."""
    (tmp_path / "kubeconfig").write_text(
        (ROOT / "tests/test_placement.py").read_text().split('KUBECONFIG = """')[1].split('"""')[0]
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "ZENML_CONFIG_PATH": str(tmp_path / "zenml"),
        "KUBECONFIG": str(tmp_path / "kubeconfig"),
        "KUBE_CONTEXT": "gpu-cluster",
        "KUBEFLOW_NAMESPACE": "team",
        "ARTIFACT_URI": "s3://bucket/zenml",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "AKIA-test",
        "AWS_SECRET_ACCESS_KEY": "s3-secret-test",
        "REGISTRY_URI": "registry.example.com/erasediff",
        "MLFLOW_TRACKING_URI": "http://mlflow.mlflow.svc.cluster.local:5000",
        "MLFLOW_TRACKING_USERNAME": "zenml",
        "MLFLOW_TRACKING_PASSWORD": "mlflow-secret-test",
    }
    for script in ("shared-components.sh", "k8s-gpu-stack.sh", "kubeflow-gpu-stack.sh"):
        done = subprocess.run(
            ["bash", str(DEPLOY / "zenml" / script)], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, f"{script}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    done = subprocess.run([sys.executable, "-c", STACK_REPORT], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    report = done.stdout
    stacks, server = (yaml.safe_load(line) for line in report.splitlines()[-2:])
    # Snapshots (the ticketing path) run from a ZenML server only on stock flavors: k8s-gpu, not kubeflow-gpu.
    assert server["k8s-gpu"] == "runnable" and "custom flavor" in server["kubeflow-gpu"], server
    assert stacks["k8s-gpu"]["orchestrator"] == [
        "kubernetes",
        {"kubernetes_context": "gpu-cluster", "kubernetes_namespace": "erasediff"},
    ]
    assert stacks["kubeflow-gpu"]["orchestrator"][0] == "kubeflow_gpu"
    for stack in stacks.values():
        assert {k: v[0] for k, v in stack.items()} | {"orchestrator": None} == {
            "orchestrator": None,
            "artifact_store": "s3",
            "container_registry": "default",
            "image_builder": "local",
            "experiment_tracker": "mlflow",
            "model_registry": "mlflow",
        }
        tracker = stack["experiment_tracker"][1]
        assert (
            tracker["tracking_password"] == "{{erasediff_mlflow.password}}"
        )  # a reference; the value is in the secrets store
    assert "secret-test" not in report


STACK_REPORT = """
import json
from zenml.client import Client
from zenml.pipelines.run_utils import validate_stack_is_runnable_from_server
from zenml.utils import source_utils
source_utils.set_custom_source_root(".")  # python -c has no main file to find flavor sources from
out, server = {}, {}
for name in ("k8s-gpu", "kubeflow-gpu"):
    stack = Client().get_stack(name)
    out[name] = {str(t.value): [c[0].flavor_name, c[0].configuration] for t, c in stack.components.items()}
    try:
        validate_stack_is_runnable_from_server(Client().zen_store, stack)
        server[name] = "runnable"
    except ValueError as exc:
        server[name] = str(exc)
print(json.dumps(out))
print(json.dumps(server))
"""
