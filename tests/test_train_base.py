"""The packaged digits models are train-base's output for the current default config."""

import json

from erasediff.defaults.digits_models import RECORD, BaseTrainConfig, train_base
from erasediff.util.cache import PACKAGED_ROOT
from erasediff.util.hashing import config_hash


def test_default_config_resolves_to_packaged_assets_without_training() -> None:
    config = BaseTrainConfig()
    folder = train_base(config, progress=False)
    assert folder.parent == PACKAGED_ROOT
    record = json.loads((folder / RECORD).read_text())
    assert record["config"] == config.model_dump() and record["config_hash"] == config_hash(config.model_dump())
    assert record["seed"] == config.seed
    assert record["classifier_heldout_accuracy"] >= 0.95 and record["mean_class_accuracy"] >= 0.80
