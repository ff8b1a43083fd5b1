"""FID and KID through clean-fid, with the feature extractor as configuration.

Files and tensors take the same path: uint8 RGB pixels -> the extractor's resize -> a float batch in
[0, 255], exactly as clean-fid's ResizeDataset does for files, so the same images give the same FID
whichever form they arrive in. Reference statistics are cached under a key made of the extractor's
weights hash and the reference images' content hash.
"""

import hashlib
import warnings
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import numpy as np
import torch
from cleanfid.fid import frechet_distance, get_files_features, kernel_distance
from scipy.linalg import LinAlgWarning
from torchvision.transforms import ToTensor
from tqdm.auto import tqdm

from erasediff.data.images import require_readable, to_rgb_uint8
from erasediff.evaluation.features import FeatureExtractor
from erasediff.util.errors import DataError
from erasediff.util.hashing import file_hash

_TO_TENSOR = ToTensor()


IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class ReferenceStats:
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    content_hash: str


@dataclass
class FidResult:
    metric: str  # e.g. "fid_classifier": says which features, so nobody reads it as Inception FID
    fid: float
    kid: float
    protocol: dict = field(default_factory=dict)


def _batch_from_pixels(pixels: list[np.ndarray], extractor: FeatureExtractor) -> torch.Tensor:
    """clean-fid's ResizeDataset.__getitem__ for in-memory pixels: resize, then CHW in [0, 255]."""
    out = []
    for p in pixels:
        resized = extractor.resize(p)
        out.append(_TO_TENSOR(np.array(resized)) * 255 if resized.dtype == np.uint8 else _TO_TENSOR(resized))
    return torch.stack(out)


def features_of_tensors(images: torch.Tensor, extractor: FeatureExtractor, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    pixels = to_rgb_uint8(images)
    chunks = [extractor.forward(_batch_from_pixels(list(pixels[i : i + batch_size]), extractor)).cpu().numpy()
              for i in tqdm(range(0, len(pixels), batch_size), desc=f"{extractor.name} features", disable=not progress)]
    return np.concatenate(chunks).astype(np.float64)


def features_of_files(paths: list[Path], extractor: FeatureExtractor, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """clean-fid's own file loader (PIL -> RGB uint8 -> resize) with our extractor."""
    require_readable(paths)
    feats = get_files_features([str(p) for p in paths], model=extractor.forward, num_workers=0, batch_size=batch_size,
                               device=torch.device("cpu"), mode="clean", custom_fn_resize=extractor.resize, verbose=progress)
    return feats.astype(np.float64)


def content_hash(images: torch.Tensor) -> str:
    """Hash of the quantised pixels: the identity of a reference set."""
    return hashlib.sha256(to_rgb_uint8(images).tobytes()).hexdigest()


def _cached_stats(extractor: FeatureExtractor, digest: str, cache_dir: Path | None, compute) -> ReferenceStats:
    """Reference statistics keyed by (extractor weights, reference content): computed once, then read back."""
    cache = Path(cache_dir) / f"{extractor.name}-{extractor.weights_hash[:12]}-{digest[:16]}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return ReferenceStats(stored["mu"], stored["sigma"], stored["features"], digest)
    feats = compute()
    stats = ReferenceStats(feats.mean(0), np.cov(feats, rowvar=False), feats, digest)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial.npz")
        np.savez(partial, mu=stats.mu, sigma=stats.sigma, features=stats.features)
        partial.rename(cache)
    return stats


def _check_size(count: int, min_images: int) -> None:
    if count < min_images:
        raise DataError(f"reference set has {count} images, fewer than the configured minimum {min_images}")


def reference_stats(images: torch.Tensor, extractor: FeatureExtractor, cache_dir: Path | None, min_images: int) -> ReferenceStats:
    """Mean/covariance (and features, for KID) of real reference images held as tensors."""
    _check_size(len(images), min_images)
    return _cached_stats(extractor, content_hash(images), cache_dir, lambda: features_of_tensors(images, extractor))


def reference_stats_from_folder(folder: Path, extractor: FeatureExtractor, cache_dir: Path | None, min_images: int) -> ReferenceStats:
    """The same for a folder of real image files (e.g. COCO images for caption prompts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"reference image folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    _check_size(len(paths), min_images)
    digest = hashlib.sha256("".join(file_hash(p) for p in paths).encode()).hexdigest()
    return _cached_stats(extractor, digest, cache_dir, lambda: features_of_files(paths, extractor))


def fid_kid(generated: np.ndarray, reference: ReferenceStats, extractor: FeatureExtractor, kid_seed: int = 0) -> FidResult:
    """FID from cached reference statistics; KID with clean-fid's subsets, seeded so reruns agree."""
    if len(generated) < 2:
        raise DataError(f"FID needs at least 2 generated images, got {len(generated)}")
    sigma = np.cov(generated, rowvar=False)
    with warnings.catch_warnings():  # a singular covariance makes scipy's sqrtm warn; the protocol records the ranks instead
        warnings.simplefilter("ignore", LinAlgWarning)
        fid = float(frechet_distance(generated.mean(0), sigma, reference.mu, reference.sigma))
    state = np.random.get_state()
    np.random.seed(kid_seed)
    try:
        kid = kernel_distance(generated, reference.features, num_subsets=100, max_subset_size=1000)
    finally:
        np.random.set_state(state)
    protocol = {"implementation": "clean-fid frechet_distance / kernel_distance", "clean_fid_version": version("clean-fid"),
                "features": extractor.name, "weights_sha256": extractor.weights_hash, "generated_images": len(generated),
                "reference_images": len(reference.features), "reference_sha256": reference.content_hash, "kid_seed": kid_seed,
                "covariance_rank": {"generated": int(np.linalg.matrix_rank(sigma)), "reference": int(np.linalg.matrix_rank(reference.sigma)),
                                    "dimensions": int(sigma.shape[0])}}
    return FidResult(f"fid_{extractor.name}", fid, kid, protocol)
