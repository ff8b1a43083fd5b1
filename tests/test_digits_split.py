"""Curation and evaluation take the digits train/held-out split the base model was trained on (from its lineage), and
refuse a model whose split is unknown: another split would evaluate on training images and curate held-out ones."""

from pathlib import Path

import pandas as pd
import pytest
import torch

from erasediff.curation.sets import MANIFEST, load_curated_set, materialise_sets
from erasediff.data.digits import load_digits_split
from erasediff.defaults.digits_models import SPLIT_SEED, BaseTrainConfig, digits_split_seed, train_ddpm
from erasediff.util.errors import DataError


def test_the_split_seed_comes_from_the_lineage(digits_model) -> None:
    assert digits_split_seed(digits_model.lineage) == 0  # the packaged model: the default training config
    assert digits_split_seed({SPLIT_SEED: 5}) == 5
    with pytest.raises(DataError, match="does not record which digits train/held-out split"):
        digits_split_seed({"base": "someone else's model"})


def test_training_records_its_split_seed() -> None:
    train, _ = load_digits_split(seed=3)
    model = train_ddpm(
        train.images[:8], train.labels[:8], BaseTrainConfig(seed=3, steps=1, batch_size=4), progress=False
    )
    assert model.lineage[SPLIT_SEED] == 3


def test_curation_uses_the_models_split(tmp_path: Path) -> None:
    materialise_sets({"forget": "digits", "retain": "digits"}, [3], 16, tmp_path / "five", progress=False, split_seed=5)
    forget = load_curated_set(tmp_path / "five", "forget", 1)
    train5, _ = load_digits_split(seed=5)
    train0, _ = load_digits_split(seed=0)
    assert (forget.images - train5.images[train5.labels == 3]).abs().max() <= 1 / 127.5 + 1e-6
    assert not torch.allclose(train5.images[train5.labels == 3], train0.images[train0.labels == 3])  # the seeds differ
    assert len(pd.read_csv(tmp_path / "five" / MANIFEST)) == len(train5)
