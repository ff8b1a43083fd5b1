#!/usr/bin/env bash
# The components both GPU stacks share, registered once after `zenml login <ZenML server URL>`:
# an S3-compatible artifact store, the container registry the image is pushed to, a local image builder,
# and the team's MLflow server as experiment tracker and model registry. Credentials are read from the
# environment and stored as ZenML secrets (in the ZenML server's secrets store); components only name them.
#   ARTIFACT_URI        s3://bucket/zenml                S3_ENDPOINT_URL   optional, for MinIO and the like
#   AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY            REGISTRY_URI      registry.example.com/erasediff
#   MLFLOW_TRACKING_URI / MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (the erasediff-pipeline account)
set -euo pipefail
source "$(dirname "$0")/require.sh"
require ARTIFACT_URI AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY REGISTRY_URI MLFLOW_TRACKING_URI MLFLOW_TRACKING_USERNAME MLFLOW_TRACKING_PASSWORD

zenml secret create erasediff_s3 "--aws_access_key_id=$AWS_ACCESS_KEY_ID" "--aws_secret_access_key=$AWS_SECRET_ACCESS_KEY"
zenml secret create erasediff_mlflow "--username=$MLFLOW_TRACKING_USERNAME" "--password=$MLFLOW_TRACKING_PASSWORD"
s3_args=(--flavor=s3 "--path=$ARTIFACT_URI" --authentication_secret=erasediff_s3)
if [ -n "${S3_ENDPOINT_URL:-}" ]; then
  s3_args+=("--client_kwargs={\"endpoint_url\": \"$S3_ENDPOINT_URL\"}")
fi
zenml artifact-store register erasediff-s3 "${s3_args[@]}"
zenml container-registry register erasediff-registry --flavor=default "--uri=$REGISTRY_URI"
zenml image-builder register erasediff-docker --flavor=local
zenml experiment-tracker register erasediff-mlflow --flavor=mlflow "--tracking_uri=$MLFLOW_TRACKING_URI" \
  '--tracking_username={{erasediff_mlflow.username}}' '--tracking_password={{erasediff_mlflow.password}}'
zenml model-registry register erasediff-mlflow-registry --flavor=mlflow
