#!/usr/bin/env bash
# The kubeflow-gpu stack: ZenML's Kubeflow orchestrator (a KFP 2 pipeline: GPUs come from each step's
# ResourceSettings plus an `accelerator` node selector in configs/kubeflow_gpu.yaml; tolerations are dropped)
# plus the shared components (run shared-components.sh first). The orchestrator is the `kubeflow_gpu`
# flavor (pipelines/stacks/kubeflow_gpu_flavor.py): ZenML 0.98's stock flavor drops every step's GPU request.
# Run from the repository root (the flavor is found by its Python source path).
#   KUBE_CONTEXT        kubectl context of the cluster that runs Kubeflow Pipelines
#   KUBEFLOW_NAMESPACE  the Kubeflow profile namespace runs go to (kubeflow-user-example-com on a default install)
#   KUBEFLOW_HOST       optional: the KFP API URL, when it is not reached through the context
set -euo pipefail
source "$(dirname "$0")/require.sh"
require KUBE_CONTEXT KUBEFLOW_NAMESPACE
zenml orchestrator flavor register pipelines.stacks.kubeflow_gpu_flavor.KubeflowGPUOrchestratorFlavor
kfp_args=(--flavor=kubeflow_gpu "--kubernetes_context=$KUBE_CONTEXT" "--user_namespace=$KUBEFLOW_NAMESPACE")
if [ -n "${KUBEFLOW_HOST:-}" ]; then
  kfp_args+=("--kubeflow_hostname=$KUBEFLOW_HOST")
fi
zenml orchestrator register erasediff-kubeflow "${kfp_args[@]}"
zenml stack register kubeflow-gpu -o erasediff-kubeflow -a erasediff-s3 -c erasediff-registry -i erasediff-docker \
  -e erasediff-mlflow -r erasediff-mlflow-registry --set
