"""The embedded default dataset: scikit-learn's digits (ships inside the package, no download)."""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from erasediff.data.image_sets import LabeledImages

DIGITS_RESOLUTION = 16


NUM_DIGIT_CLASSES = 10


DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def load_digits_split(
    resolution: int = DIGITS_RESOLUTION, heldout_fraction: float = 0.2, seed: int = 0
) -> tuple[LabeledImages, LabeledImages]:
    """1,797 8x8 digits upsampled to `resolution`, scaled to [-1, 1], split stratified into (train, held-out)."""
    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1) * 2 - 1
    labels = torch.tensor(bunch.target, dtype=torch.long)
    generator = torch.Generator().manual_seed(seed)
    heldout = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(NUM_DIGIT_CLASSES):
        idx = torch.nonzero(labels == c).squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=generator)]
        heldout[idx[: round(len(idx) * heldout_fraction)]] = True
    return LabeledImages(images[~heldout], labels[~heldout]), LabeledImages(images[heldout], labels[heldout])
