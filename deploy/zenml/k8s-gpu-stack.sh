#!/usr/bin/env bash
# The k8s-gpu stack: ZenML's Kubernetes orchestrator (one pod per step; GPU limits, node selectors and
# tolerations come only from each step's pod_settings in configs/k8s_gpu.yaml) plus the shared components
# (run shared-components.sh first).
#   KUBE_CONTEXT         kubectl context of the cluster
#   ERASEDIFF_NAMESPACE  namespace of the step pods (default: erasediff)
set -euo pipefail
source "$(dirname "$0")/require.sh"
require KUBE_CONTEXT
zenml orchestrator register erasediff-k8s --flavor=kubernetes "--kubernetes_context=$KUBE_CONTEXT" \
  "--kubernetes_namespace=${ERASEDIFF_NAMESPACE:-erasediff}"
zenml stack register k8s-gpu -o erasediff-k8s -a erasediff-s3 -c erasediff-registry -i erasediff-docker \
  -e erasediff-mlflow -r erasediff-mlflow-registry --set
