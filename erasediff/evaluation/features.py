"""Feature extractors for FID/KID, chosen by configuration and named in the metric they produce.

* `classifier`: the evaluator's penultimate features (embedded default; metric `fid_classifier`,
  never to be read as Inception FID),
* `inception`: clean-fid's Inception weights from a local file (never downloaded),
* `clip`: image features of a local transformers CLIP model.

Each takes clean-fid's input: a float batch (B, 3, H, W) in [0, 255] after `resize`, which maps a
uint8 HWC image to the extractor's input size (clean-fid's own 'clean' PIL-bicubic resizer).
"""

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from cleanfid.resize import make_resizer

from erasediff.models.classifier import Classifier
from erasediff.util.errors import ModelLoadError
from erasediff.util.hashing import file_hash

INCEPTION_FILE = "inception-2015-12-05.pt"


INCEPTION_ENV = "ERASEDIFF_INCEPTION_WEIGHTS"


INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"


@dataclass
class FeatureExtractor:
    name: str  # goes into the metric name: fid_<name>
    forward: Callable[[torch.Tensor], torch.Tensor]
    resize: Callable[[np.ndarray], np.ndarray]
    weights_hash: str


def classifier_features(classifier: Classifier, weights: Path) -> FeatureExtractor:
    size = classifier.config.resolution

    @torch.no_grad()
    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = batch.float() / 127.5 - 1  # back to the classifier's [-1, 1]
        if classifier.config.in_channels == 1:
            x = x.mean(dim=1, keepdim=True)
        return classifier.eval().features(x)

    return FeatureExtractor(
        "classifier", forward, make_resizer("PIL", False, "bicubic", (size, size)), file_hash(weights)
    )


def inception_features(weights: str | Path | None = None) -> FeatureExtractor:
    """clean-fid's Inception from a local file: the argument, else $ERASEDIFF_INCEPTION_WEIGHTS."""
    from cleanfid.inception_torchscript import InceptionV3W

    path = Path(weights or os.environ.get(INCEPTION_ENV) or Path.home() / ".cache" / "erasediff" / INCEPTION_FILE)
    if not path.is_file():
        raise ModelLoadError(
            f"Inception weights not found at {path}: stage clean-fid's {INCEPTION_FILE} ({INCEPTION_URL}) there, "
            f"or point evaluation.fid.inception_weights or ${INCEPTION_ENV} at it; it is never downloaded"
        )
    if path.name != INCEPTION_FILE:
        raise ModelLoadError(f"Inception weights must be named {INCEPTION_FILE} (clean-fid's file), got {path.name}")
    model = InceptionV3W(str(path.parent), download=False).eval()

    @torch.no_grad()
    def forward(batch: torch.Tensor) -> torch.Tensor:
        return model(batch.float())

    return FeatureExtractor("inception", forward, make_resizer("PIL", False, "bicubic", (299, 299)), file_hash(path))


def clip_features(model_dir: str | Path) -> FeatureExtractor:
    """Image embeddings of a local CLIP model (transformers folder)."""
    from erasediff.models.clip import load_clip

    clip, _, image_size, mean, std = load_clip(model_dir)

    @torch.no_grad()
    def forward(batch: torch.Tensor) -> torch.Tensor:
        x = (batch.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        return clip.get_image_features(pixel_values=x).pooler_output  # transformers 5: projected embedding

    weights = Path(model_dir) / "model.safetensors"
    return FeatureExtractor(
        "clip", forward, make_resizer("PIL", False, "bicubic", (image_size, image_size)), file_hash(weights)
    )
