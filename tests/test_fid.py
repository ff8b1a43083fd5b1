"""FID/KID sanity: a set against itself ~ 0, against noise large; PNG files and tensors agree exactly."""

from pathlib import Path

import numpy as np
import pytest
import torch

from erasediff.comparison.class_models import real_digits_stats
from erasediff.data.digits import load_digits_split
from erasediff.data.images import save_png
from erasediff.defaults.resolve import resolve_classifier
from erasediff.evaluation.features import classifier_features, inception_features
from erasediff.evaluation.fid import (
    KID_FLOOR_SPLITS,
    ReferenceStats,
    _halves,
    _kid,
    features_of_files,
    features_of_tensors,
    fid_kid,
    reference_stats,
)
from erasediff.evaluation.metric_settings import FidSettings
from erasediff.util.errors import DataError, ModelLoadError


@pytest.fixture(scope="module")
def extractor():
    classifier, weights = resolve_classifier("digits")
    return classifier_features(classifier, weights)


@pytest.fixture(scope="module")
def heldout():
    return load_digits_split()[1].images


def test_fid_of_a_set_against_itself_is_zero_and_against_noise_large(extractor, heldout, tmp_path: Path) -> None:
    ref = reference_stats(heldout, extractor, tmp_path, min_images=100)
    same = fid_kid(features_of_tensors(heldout, extractor), ref, extractor)
    noise = torch.rand(len(heldout), 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = fid_kid(features_of_tensors(noise, extractor), ref, extractor)
    assert abs(same.fid) < 1e-3
    assert far.fid > 50
    assert same.metric == "fid_classifier"  # never to be mistaken for Inception FID
    assert (
        same.protocol["reference_sha256"] == ref.content_hash
        and same.protocol["weights_sha256"] == extractor.weights_hash
    )


def test_kid_between_real_halves_is_small_and_against_noise_large(extractor, heldout) -> None:
    """KID is an unbiased estimate over independent samples, so two disjoint halves of the real set stand in for
    'itself'."""
    order = torch.randperm(len(heldout), generator=torch.Generator().manual_seed(0))
    half_a, half_b = heldout[order[: len(order) // 2]], heldout[order[len(order) // 2 :]]
    ref = reference_stats(half_b, extractor, None, min_images=100)
    real = fid_kid(features_of_tensors(half_a, extractor), ref, extractor)
    noise = torch.rand(len(half_a), 1, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1
    far = fid_kid(features_of_tensors(noise, extractor), ref, extractor)
    assert far.kid > 20 * abs(real.kid) and far.fid > 20 * real.fid


def test_png_files_and_tensors_give_identical_fid(extractor, heldout, tmp_path: Path) -> None:
    images = heldout[:120]
    paths = [save_png(img, tmp_path / f"{i:04d}.png") for i, img in enumerate(images)]
    from_files, from_tensors = features_of_files(paths, extractor), features_of_tensors(images, extractor)
    assert np.array_equal(from_files, from_tensors)
    ref = reference_stats(heldout, extractor, None, min_images=100)
    assert fid_kid(from_files, ref, extractor).fid == fid_kid(from_tensors, ref, extractor).fid


def test_reference_statistics_are_cached_by_content(extractor, heldout, tmp_path: Path) -> None:
    first = reference_stats(heldout, extractor, tmp_path, min_images=100)
    cached = list(tmp_path.glob("classifier-*.npz"))
    assert len(cached) == 1 and first.content_hash[:16] in cached[0].name
    again = reference_stats(heldout, extractor, tmp_path, min_images=100)
    assert np.array_equal(first.mu, again.mu) and np.array_equal(first.sigma, again.sigma)
    reference_stats(heldout[:200], extractor, tmp_path, min_images=100)
    assert len(list(tmp_path.glob("classifier-*.npz"))) == 2  # other content, other key


def test_kid_is_reproducible(extractor, heldout) -> None:
    ref = reference_stats(heldout, extractor, None, min_images=100)
    feats = features_of_tensors(heldout[:100], extractor)
    assert fid_kid(feats, ref, extractor).kid == fid_kid(feats, ref, extractor).kid


def test_small_reference_set_is_refused(extractor, heldout) -> None:
    with pytest.raises(DataError, match="reference set has 20 images, fewer than the configured minimum 100"):
        reference_stats(heldout[:20], extractor, None, min_images=100)


def test_missing_inception_weights_say_what_to_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ERASEDIFF_INCEPTION_WEIGHTS", raising=False)
    with pytest.raises(
        ModelLoadError, match=r"Inception weights not found at .*nowhere/inception-2015-12-05\.pt: stage clean-fid's"
    ):
        inception_features(tmp_path / "nowhere" / "inception-2015-12-05.pt")
    monkeypatch.setenv("ERASEDIFF_INCEPTION_WEIGHTS", str(tmp_path / "env" / "inception-2015-12-05.pt"))
    with pytest.raises(ModelLoadError, match="env/inception-2015-12-05.pt"):
        inception_features()


def test_corrupt_png_is_an_error(extractor, tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="cannot read image"):
        features_of_files([bad], extractor)


def test_only_informative_features_count_and_the_real_floor_is_recorded(extractor, heldout) -> None:
    """Dead evaluator units (zero on every real image) are left out, and every result carries the real-vs-real floor."""
    ref = reference_stats(heldout, extractor, None, min_images=100)
    dead = ref.features.std(0) == 0
    assert dead.any() and not ref.informative[dead].any() and ref.informative.sum() == (~dead).sum()
    result = fid_kid(features_of_tensors(heldout[:200], extractor), ref, extractor)
    used = result.protocol["features_used"]
    assert used["informative"] == int(ref.informative.sum()) and used["of"] == ref.features.shape[1]
    assert result.protocol["covariance_rank"]["dimensions"] == used["informative"]
    floor = result.protocol["real_vs_real"]
    assert floor["half_size"] == len(heldout) // 2 and floor["fid"] > 0 and np.isfinite(floor["kid"])
    metrics = result.metrics()
    assert metrics["real_floor_fid_classifier"] == floor["fid"] and metrics["kid_classifier"] == result.kid


def test_the_kid_floor_is_real_datas_kid_noise_and_stays_positive(extractor) -> None:
    """One split's real-vs-real KID is noise of either sign (a negative one made the drift gate fail on any "five"
    request); the floor is that noise's scale: positive, and what KID reads between fresh draws of the same data."""
    rng = np.random.default_rng(0)
    ref = ReferenceStats(rng.standard_normal((400, 16)), "synthetic")
    single = [_kid(*_halves(ref.features, s), s) for s in range(8)]
    fresh = [_kid(rng.standard_normal((200, 16)), rng.standard_normal((200, 16)), s, subsets=1) for s in range(64)]
    assert min(single) < 0 < ref.floor["kid"] and ref.floor["kid_splits"] == KID_FLOOR_SPLITS
    assert 0.6 < np.sqrt(np.mean(np.square(fresh))) / ref.floor["kid"] < 1.6
    classifier, _ = resolve_classifier("digits")
    five = real_digits_stats(
        classifier.config.resolution, 0, [c for c in range(10) if c != 5], False, extractor, FidSettings()
    )
    assert _kid(*_halves(five.features[:, five.informative], 0), 0) < 0 < five.floor["kid"]
