"""The MLflow pyfunc registered for a promoted text-to-image model (models-from-code, like `class_pyfunc.py`).

The registered artifact holds the unlearned pipeline folder's part manifest under `artifacts/diffusers`; loading
rebuilds the folder.
Input: a DataFrame with a `prompt` column. Params: guidance, steps, seed (image i uses seed + i).
Output: uint8 images (N, H, W, C).
"""

from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel, PythonModelContext

from erasediff.data.images import to_uint8
from erasediff.data.prompts import PromptRow
from erasediff.models.sampling import sample_prompts
from erasediff.models.text_pipeline import load_text_to_image
from mlflow_adapters.blob_store import materialize


class TextToImagePyfunc(PythonModel):
    def load_context(self, context: PythonModelContext) -> None:
        self.pipe = load_text_to_image(materialize(Path(context.artifacts["diffusers"])))

    # a DataFrame hint: MLflow's hint-based validation stays off (the logged signature checks the input) and its
    # "add type hints" warning is not printed at every log and load
    def predict(self, context: PythonModelContext, model_input: pd.DataFrame, params: dict | None = None) -> np.ndarray:
        params = params or {}
        seed = int(params.get("seed", 0))
        rows = [PromptRow(str(p), seed + i, None) for i, p in enumerate(pd.DataFrame(model_input)["prompt"])]
        images = sample_prompts(
            self.pipe, rows, int(params.get("steps", 25)), float(params.get("guidance", 7.5)), progress=False
        )
        return to_uint8(images)


mlflow.models.set_model(TextToImagePyfunc())
