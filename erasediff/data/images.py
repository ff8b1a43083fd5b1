"""One quantisation from model output to pixels, shared by PNG files and in-memory metrics.

Casting [-1, 1] tensors straight to uint8 (a known bug in a well-known repo) makes FID meaningless;
everything here maps [-1, 1] -> [0, 255] with rounding, exactly like torchvision's save_image.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from erasediff.util.errors import DataError


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) in [-1, 1] -> (N, H, W, C) uint8."""
    pixels = ((images.detach().float().cpu().clamp(-1, 1) + 1) / 2).mul(255).add(0.5).clamp(0, 255).to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).numpy()


def to_rgb_uint8(images: torch.Tensor) -> np.ndarray:
    """As PIL's convert('RGB') sees a saved PNG: grey images repeat their channel three times."""
    pixels = to_uint8(images)
    return np.repeat(pixels, 3, axis=3) if pixels.shape[3] == 1 else pixels


def save_png(image: torch.Tensor, path: Path) -> Path:
    """One (C, H, W) image in [-1, 1] as a lossless PNG (greyscale 'L' for one channel)."""
    pixels = to_uint8(image.unsqueeze(0))[0]
    Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return Path(path)


@contextmanager
def open_image(path: Path) -> Iterator[Image.Image]:
    """PIL's `Image.open`, with an image over PIL's decompression-bomb limit refused as bad input naming the file (PIL
    raises an error that is neither OSError nor names the file)."""
    try:
        with Image.open(path) as image:
            yield image
    except Image.DecompressionBombError as exc:
        raise DataError(f"image {path} refused: {exc}") from None


def require_readable(paths: list[Path]) -> None:
    """A corrupt or missing image is an error naming the file, never a silently empty result."""
    for path in paths:
        try:
            with open_image(path) as image:
                image.verify()
        except (OSError, SyntaxError) as exc:
            raise DataError(f"cannot read image {path}: {exc}") from exc
