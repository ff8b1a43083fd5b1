"""Image sets held as tensors in [-1, 1]: labelled (class requests) or captioned (concept requests),
and the forget/retain split of a class request.
"""

from dataclasses import dataclass

import torch

from erasediff.util.errors import DataError


@dataclass(frozen=True)
class LabeledImages:
    """Images (N, C, H, W) in [-1, 1] with integer class labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.labels.ndim != 1 or len(self.images) != len(self.labels):
            raise DataError(
                f"expected images (N,C,H,W) and labels (N,), got {tuple(self.images.shape)} and "
                f"{tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return len(self.labels)

    def where(self, mask: torch.Tensor) -> "LabeledImages":
        return LabeledImages(self.images[mask], self.labels[mask])

    def concat(self, other: "LabeledImages") -> "LabeledImages":
        return LabeledImages(torch.cat([self.images, other.images]), torch.cat([self.labels, other.labels]))


def check_forget_classes(forget_classes: list[int], num_classes: int) -> None:
    """Each forgotten class must exist, and at least one class must remain (the retain set and remap targets)."""
    bad = [c for c in forget_classes if not 0 <= c < num_classes]
    if bad:
        raise DataError(f"forget class {bad[0]} is outside the model's classes 0..{num_classes - 1}")
    if len(set(forget_classes)) >= num_classes:
        raise DataError("cannot forget every class: nothing would be left to retain")


def split_forget_retain(
    data: LabeledImages, forget_classes: list[int], num_classes: int
) -> tuple[LabeledImages, LabeledImages]:
    """Forget set = every image of the forgotten classes; retain set = every other image."""
    check_forget_classes(forget_classes, num_classes)
    is_forget = torch.isin(data.labels, torch.tensor(forget_classes))
    forget, retain = data.where(is_forget), data.where(~is_forget)
    if len(forget) == 0:
        raise DataError(f"forget set is empty: no images of classes {forget_classes}")
    if len(retain) == 0:
        raise DataError("retain set is empty")
    return forget, retain


@dataclass(frozen=True)
class CaptionedImages:
    images: torch.Tensor  # (N, C, H, W) in [-1, 1]
    captions: list[str]

    def __len__(self) -> int:
        return len(self.captions)
