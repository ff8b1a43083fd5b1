"""Evaluators from local folders: the digits CNN or any torchvision architecture with safetensors weights."""

import json
from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from erasediff.data.digits import load_digits_split
from erasediff.evaluation.class_accuracy import score_samples
from erasediff.evaluation.features import classifier_features
from erasediff.evaluation.fid import features_of_tensors
from erasediff.models.classifier import TorchvisionClassifier, load_classifier
from erasediff.util.errors import ModelLoadError


def save_torchvision(folder: Path, architecture: str = "resnet18") -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(0)
    net = getattr(torchvision.models, architecture)(weights=None, num_classes=10).eval()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"architecture": architecture, "num_classes": 10, "resolution": 32}))
    save_file(net.state_dict(), folder / "model.safetensors")
    return folder, net


def test_torchvision_classifier_from_local_folder(tmp_path: Path) -> None:
    folder, net = save_torchvision(tmp_path / "resnet")
    classifier = load_classifier(folder)
    assert isinstance(classifier, TorchvisionClassifier)
    for name, value in net.state_dict().items():
        assert torch.equal(classifier.net.state_dict()[name], value), name
    heldout = load_digits_split()[1]
    images, labels = heldout.images[:40], heldout.labels[:40]
    probs = classifier.predict_proba(images)
    assert probs.shape == (40, 10) and torch.allclose(probs.sum(1), torch.ones(40))
    assert set(score_samples(classifier, images, labels)) == set(labels.tolist())
    feats = features_of_tensors(images, classifier_features(classifier, folder / "model.safetensors"))
    assert feats.shape == (40, 512)  # resnet18's penultimate width, captured at its last linear layer


def test_unknown_architecture_and_missing_config(tmp_path: Path) -> None:
    folder, _ = save_torchvision(tmp_path / "resnet")
    (folder / "config.json").write_text(json.dumps({"architecture": "resnet9000", "num_classes": 10}))
    with pytest.raises(ModelLoadError, match="unknown torchvision architecture 'resnet9000'"):
        load_classifier(folder)
    (folder / "config.json").unlink()
    with pytest.raises(ModelLoadError, match="missing .*config.json"):
        load_classifier(folder)
