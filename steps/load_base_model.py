"""Step: resolve the request's base model (local folder, 'digits'/'text-digits', or models:/name@alias) into a versioned
artifact: a reference with its content hash (mlflow_adapters/step_folders.py), never a copy of the weights."""

from pathlib import Path
from typing import Annotated

from zenml import step

from erasediff.defaults.resolve import model_path
from erasediff.request.base_model import check_base_model
from erasediff.util.hashing import folder_hash
from mlflow_adapters.registry import MODELS_SCHEME, registered_model_folder
from mlflow_adapters.step_folders import reference
from steps.request_parameter import RequestParameter


@step
def load_base_model(
    request: RequestParameter,
) -> tuple[Annotated[Path, "base_model"], Annotated[str, "base_model_sha256"]]:
    spec = request.base_model
    folder = registered_model_folder(spec) if spec.startswith(MODELS_SCHEME) else model_path(spec)
    check_base_model(request, folder)
    sha256 = folder_hash(folder)
    return reference(folder, sha256, spec), sha256  # a reference: the base model is never copied
