"""CLIP score with a tiny CLIP trained here on digit captions: definition, direction, errors; CLIP features for FID."""

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from erasediff.data.digits import load_digits_split
from erasediff.evaluation.clip_score import clip_score
from erasediff.evaluation.features import clip_features
from erasediff.evaluation.fid import features_of_tensors, fid_kid, reference_stats
from erasediff.util.errors import DataError, ModelLoadError
from tests.tiny_clip import digit_captions


@pytest.fixture(scope="module")
def heldout():
    return load_digits_split()[1]


def test_matching_captions_score_higher_than_mismatched(digit_clip_dir: Path, heldout) -> None:
    captions = digit_captions()
    images, labels = heldout.images[:200], heldout.labels[:200].tolist()
    right = clip_score(images, [captions[c] for c in labels], digit_clip_dir)
    wrong = clip_score(images, [captions[(c + 5) % 10] for c in labels], digit_clip_dir)
    assert right.mean > wrong.mean + 2
    assert all(0 <= s <= 100 for s in right.per_image + wrong.per_image)
    assert right.protocol["images"] == 200 and len(right.protocol["weights_sha256"]) == 64


def test_score_is_100_times_clamped_cosine(digit_clip_dir: Path, heldout) -> None:
    from erasediff.models.clip import load_clip

    model, tokenizer, size, mean, std = load_clip(digit_clip_dir)
    images, prompt = heldout.images[:4], digit_captions()[heldout.labels[0]]
    result = clip_score(images, [prompt] * 4, digit_clip_dir)
    # recompute the definition by hand (bicubic resize in float differs from PIL's by < 1 score point)
    x = (
        F.interpolate((images + 1) / 2, size=(size, size), mode="bicubic", align_corners=False)
        .clamp(0, 1)
        .repeat(1, 3, 1, 1)
    )
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    tokens = tokenizer(
        [prompt] * 4,
        padding="max_length",
        max_length=model.config.text_config.max_position_embeddings,
        return_tensors="pt",
    )
    with torch.no_grad():
        cos = F.cosine_similarity(
            model.get_image_features(pixel_values=x).pooler_output, model.get_text_features(**tokens).pooler_output
        )
    assert result.per_image == pytest.approx((100 * cos.clamp_min(0)).tolist(), abs=1.0)


def test_clip_score_errors(digit_clip_dir: Path, heldout, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="one prompt per image"):
        clip_score(heldout.images[:3], ["a photo of the digit one"], digit_clip_dir)
    with pytest.raises(ModelLoadError, match="model folder not found"):
        clip_score(heldout.images[:1], ["x"], tmp_path / "no-clip")


def test_clip_features_for_fid(digit_clip_dir: Path, heldout) -> None:
    extractor = clip_features(digit_clip_dir)
    ref = reference_stats(heldout.images, extractor, None, min_images=100)
    same = fid_kid(features_of_tensors(heldout.images, extractor), ref, extractor)
    noise = torch.rand(len(heldout), 1, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1
    far = fid_kid(features_of_tensors(noise, extractor), ref, extractor)
    assert same.metric == "fid_clip" and abs(same.fid) < 1e-3 and far.fid > 1.0
