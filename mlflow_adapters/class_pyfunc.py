"""The MLflow pyfunc registered for a promoted model (models-from-code: MLflow stores this file with the model).

The registered artifact holds the unlearned diffusers folder's part manifest under `artifacts/diffusers` (rebuilt at
load);
`predict` samples the classes asked for, so `mlflow models serve models:/<name>@champion` serves it.
Input: a DataFrame with an integer `class` column. Params: guidance, steps, seed. Output: uint8 images (N, H, W, C).
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import torch
from mlflow.pyfunc import PythonModel, PythonModelContext

from erasediff.data.images import to_uint8
from erasediff.models.class_model import load_class_model
from erasediff.models.sampling import sample_classes
from mlflow_adapters.blob_store import materialize


class ClassDiffusionPyfunc(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        self.model = load_class_model(materialize(Path(context.artifacts["diffusers"])))

    # a DataFrame hint: MLflow's hint-based validation stays off (the logged signature checks the input) and its
    # "add type hints" warning is not printed at every log and load
    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        params = params or {}
        labels = torch.tensor(pd.DataFrame(model_input)["class"].to_numpy(dtype=np.int64))
        m = self.model
        images = sample_classes(
            m.unet,
            m.scheduler,
            labels,
            m.null_class,
            float(params.get("guidance", 2.0)),
            int(params.get("steps", 25)),
            "ddim",
            int(params.get("seed", 0)),
            progress=False,
        )
        return to_uint8(images)


mlflow.models.set_model(ClassDiffusionPyfunc())
