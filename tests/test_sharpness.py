"""The sharpness measure sees what the evaluator's features miss: noise raises it, blur lowers it, a rerun keeps it."""

import torch
import torchvision.transforms.functional as TF

from erasediff.evaluation.sharpness import laplacian_variance, sharpness_change


def _strokes(n: int = 32, size: int = 16) -> torch.Tensor:
    """Digit-like images: a dark background and a few bright strokes, inside [-1, 1] as a model's samples are (not
    saturated)."""
    g = torch.Generator().manual_seed(0)
    images = torch.full((n, 3, size, size), -0.8)
    for i in range(n):
        r, c = torch.randint(2, size - 6, (2,), generator=g).tolist()
        images[i, :, r : r + 5, c] = 0.6
        images[i, :, r, c : c + 4] = 0.6
    return images


def test_noise_raises_blur_lowers_and_the_same_images_keep_sharpness() -> None:
    images = _strokes()
    noisy = (images + 0.2 * torch.randn(images.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert sharpness_change(images.clone(), images) == 0.0
    assert sharpness_change(noisy, images) > 0.2
    assert sharpness_change(TF.gaussian_blur(images, 3, 0.7), images) < -0.2
    assert laplacian_variance(images).shape == (len(images),)
    assert torch.all(laplacian_variance(-torch.ones(2, 1, 8, 8)) == 0)  # a flat image has no edges
