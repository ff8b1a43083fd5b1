"""FID and KID through clean-fid, with the feature extractor as configuration.

Files and tensors take the same path: uint8 RGB pixels -> the extractor's resize -> a float batch in
[0, 255], exactly as clean-fid's ResizeDataset does for files, so the same images give the same FID
whichever form they arrive in. Reference statistics are cached under a key made of the extractor's
weights hash and the reference images' content hash.

Power, not just a number: the statistics use the extractor's informative features only (those that vary on the
reference; a ReLU evaluator leaves many at zero, which makes the covariance singular and KID's kernel diluted), and
every reference carries its real-vs-real floor, so a reader sees how far from real data a perfect model would still
score at this sample size. FID is biased at small N, so its floor is the FID between two seeded halves. KID is unbiased:
between two halves of the same data it is zero on average, and one split reads noise of either sign (on the digits it
read negative for six of ten retained sets), useless as a scale. Its floor is that noise, the root mean square of KID
over many seeded splits, which is positive and the scale a measured KID must clear to mean anything.
"""

import hashlib
import os
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


INFORMATIVE_STD = (
    1e-6  # a feature whose spread on the reference is below this (relative to the largest) carries nothing
)


@dataclass
class ReferenceStats:
    features: np.ndarray  # all of the extractor's features of the reference images
    content_hash: str

    def __post_init__(self) -> None:
        std = self.features.std(0)
        self.informative = std > INFORMATIVE_STD * max(float(std.max()), 1e-12)
        kept = self.features[:, self.informative]
        self.mu, self.sigma = kept.mean(0), np.cov(kept, rowvar=False)
        self.floor = _real_vs_real(kept)


KID_FLOOR_SPLITS = 256  # the floor's noise estimate moves by about 10 % between two sets of 128 splits on the digits


def _halves(features: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint seeded halves of equal size (one image left out when the count is odd)."""
    order = np.random.default_rng(seed).permutation(len(features))
    half = len(order) // 2
    return features[order[:half]], features[order[half : 2 * half]]


def _real_vs_real(features: np.ndarray, seed: int = 0, splits: int = KID_FLOOR_SPLITS) -> dict:
    """What real data scores against itself at half its size: FID between two seeded halves, and KID's noise, the
    root mean square of KID over `splits` seeded splits. Each split's KID is clean-fid's estimator on one subset of up
    to 1000 images a side; for halves that small the subset is the whole half, and clean-fid's 100 subsets would be
    100 copies of the same value."""
    a, b = _halves(features, seed)
    if len(a) < 2:
        return {"fid": float("nan"), "kid": float("nan"), "half_size": len(a), "seed": seed, "kid_splits": 0}
    kids = np.array([_kid(*_halves(features, seed + s), seed + s, subsets=1) for s in range(splits)])
    kid = float(np.sqrt(np.mean(kids**2)))
    return {"fid": _frechet(a, b), "kid": kid, "half_size": len(a), "seed": seed, "kid_splits": splits}


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    with (
        warnings.catch_warnings()
    ):  # a singular covariance makes scipy's sqrtm warn; the protocol records the ranks instead
        warnings.simplefilter("ignore", LinAlgWarning)
        return float(frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False)))


def _kid(a: np.ndarray, b: np.ndarray, seed: int, subsets: int = 100) -> float:
    """clean-fid's KID (`subsets` subsets of up to 1000), with numpy's global seed set and restored so reruns agree."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return float(kernel_distance(a, b, num_subsets=subsets, max_subset_size=1000))
    finally:
        np.random.set_state(state)


@dataclass
class FidResult:
    metric: str  # e.g. "fid_classifier": says which features, so nobody reads it as Inception FID
    fid: float
    kid: float
    protocol: dict = field(default_factory=dict)

    def metrics(self) -> dict[str, float]:
        """FID, KID and the reference's real-vs-real floor of each (the KID gate measures increases against it)."""
        name = self.metric.removeprefix("fid_")
        floor = self.protocol.get("real_vs_real", {})
        return {
            self.metric: self.fid,
            f"kid_{name}": self.kid,
            f"real_floor_fid_{name}": floor.get("fid", float("nan")),
            f"real_floor_kid_{name}": floor.get("kid", float("nan")),
        }


def _batch_from_pixels(pixels: list[np.ndarray], extractor: FeatureExtractor) -> torch.Tensor:
    """clean-fid's ResizeDataset.__getitem__ for in-memory pixels: resize, then CHW in [0, 255]."""
    out = []
    for p in pixels:
        resized = extractor.resize(p)
        out.append(_TO_TENSOR(np.array(resized)) * 255 if resized.dtype == np.uint8 else _TO_TENSOR(resized))
    return torch.stack(out)


def features_of_tensors(
    images: torch.Tensor, extractor: FeatureExtractor, batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    pixels = to_rgb_uint8(images)
    chunks = [
        extractor.forward(_batch_from_pixels(list(pixels[i : i + batch_size]), extractor)).cpu().numpy()
        for i in tqdm(range(0, len(pixels), batch_size), desc=f"{extractor.name} features", disable=not progress)
    ]
    return np.concatenate(chunks).astype(np.float64)


def features_of_files(
    paths: list[Path], extractor: FeatureExtractor, batch_size: int = 256, progress: bool = False
) -> np.ndarray:
    """clean-fid's own file loader (PIL -> RGB uint8 -> resize) with our extractor."""
    require_readable(paths)
    feats = get_files_features(
        [str(p) for p in paths],
        model=extractor.forward,
        num_workers=0,
        batch_size=batch_size,
        device=torch.device("cpu"),
        mode="clean",
        custom_fn_resize=extractor.resize,
        verbose=progress,
    )
    return feats.astype(np.float64)


def content_hash(images: torch.Tensor) -> str:
    """Hash of the quantised pixels: the identity of a reference set."""
    return hashlib.sha256(to_rgb_uint8(images).tobytes()).hexdigest()


def _cached_stats(extractor: FeatureExtractor, digest: str, cache_dir: Path | None, compute) -> ReferenceStats:
    """Reference statistics keyed by (extractor weights, reference content): computed once, then read back."""
    cache = Path(cache_dir) / f"{extractor.name}-{extractor.weights_hash[:12]}-{digest[:16]}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        with np.load(cache) as stored:
            return ReferenceStats(stored["features"], digest)
    stats = ReferenceStats(compute(), digest)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(f".{os.getpid()}.partial.npz")  # two evaluations may fill the same cache at once
        np.savez(partial, features=stats.features)
        partial.replace(cache)
    return stats


def _check_size(count: int, min_images: int) -> None:
    if count < min_images:
        raise DataError(f"reference set has {count} images, fewer than the configured minimum {min_images}")


def reference_stats(
    images: torch.Tensor, extractor: FeatureExtractor, cache_dir: Path | None, min_images: int
) -> ReferenceStats:
    """Mean/covariance (and features, for KID) of real reference images held as tensors."""
    _check_size(len(images), min_images)
    return _cached_stats(extractor, content_hash(images), cache_dir, lambda: features_of_tensors(images, extractor))


def reference_stats_from_folder(
    folder: Path, extractor: FeatureExtractor, cache_dir: Path | None, min_images: int
) -> ReferenceStats:
    """The same for a folder of real image files (e.g. COCO images for caption prompts)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"reference image folder not found: {folder}")
    paths = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    _check_size(len(paths), min_images)
    digest = hashlib.sha256("".join(file_hash(p) for p in paths).encode()).hexdigest()
    return _cached_stats(extractor, digest, cache_dir, lambda: features_of_files(paths, extractor))


def kid_between(a: np.ndarray, b: np.ndarray, reference: ReferenceStats, seed: int = 0) -> float:
    """KID between two generated sets (one model's samples against another's), on the reference's informative
    features."""
    return _kid(a[:, reference.informative], b[:, reference.informative], seed)


def fid_kid(
    generated: np.ndarray, reference: ReferenceStats, extractor: FeatureExtractor, kid_seed: int = 0
) -> FidResult:
    """FID from cached reference statistics and KID (clean-fid's, seeded), both on the informative features."""
    if len(generated) < 2:
        raise DataError(f"FID needs at least 2 generated images, got {len(generated)}")
    generated = generated[:, reference.informative]
    sigma = np.cov(generated, rowvar=False)
    with (
        warnings.catch_warnings()
    ):  # a singular covariance makes scipy's sqrtm warn; the protocol records the ranks instead
        warnings.simplefilter("ignore", LinAlgWarning)
        fid = float(frechet_distance(generated.mean(0), sigma, reference.mu, reference.sigma))
    kid = _kid(generated, reference.features[:, reference.informative], kid_seed)
    protocol = {
        "implementation": "clean-fid frechet_distance / kernel_distance",
        "clean_fid_version": version("clean-fid"),
        "features": extractor.name,
        "weights_sha256": extractor.weights_hash,
        "generated_images": len(generated),
        "reference_images": len(reference.features),
        "reference_sha256": reference.content_hash,
        "kid_seed": kid_seed,
        "features_used": {
            "informative": int(reference.informative.sum()),
            "of": len(reference.informative),
            "rule": f"std on the reference above {INFORMATIVE_STD:g} x the largest",
        },
        "covariance_rank": {
            "generated": int(np.linalg.matrix_rank(sigma)),
            "reference": int(np.linalg.matrix_rank(reference.sigma)),
            "dimensions": int(sigma.shape[0]),
        },
        "real_vs_real": reference.floor,
    }
    return FidResult(f"fid_{extractor.name}", fid, kid, protocol)
