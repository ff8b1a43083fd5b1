"""The evaluator: a small CNN that says which digit an image shows (folder: config.json + model.safetensors)."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from erasediff.data.image_sets import LabeledImages
from erasediff.models.class_model import require_safetensors
from erasediff.util.atomic import atomic_dir
from erasediff.util.errors import ModelLoadError

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    num_classes: int = 10
    resolution: int = 16
    width: int = 32
    feature_dim: int = 128


class Classifier(nn.Module):
    """What the metrics need of an evaluator: logits and penultimate features of [-1, 1] images."""

    config: ClassifierConfig

    def features(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.eval()
        return torch.cat(
            [F.softmax(self(images[i : i + batch_size]), dim=1) for i in range(0, len(images), batch_size)]
        )


class ImageClassifier(Classifier):
    """conv-conv-pool, conv-pool, linear -> features (penultimate layer), linear -> logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * w * (config.resolution // 4) ** 2, config.feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))

    def save_pretrained(self, path: Path) -> Path:
        with atomic_dir(Path(path)) as scratch:
            (scratch / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
            save_file(self.state_dict(), scratch / WEIGHTS)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ImageClassifier":
        model = load_classifier(path)
        if not isinstance(model, cls):
            raise ModelLoadError(f"{path} holds a {type(model).__name__}, not an {cls.__name__}")
        return model


class TorchvisionClassifier(Classifier):
    """A torchvision architecture named in config.json ("architecture": "resnet18", ...) with safetensors weights.

    Images in [-1, 1] are resized to `resolution`, repeated to RGB and normalised with `mean`/`std`;
    features are the input of the last linear layer (the penultimate activations).
    """

    def __init__(
        self, architecture: str, num_classes: int, resolution: int, mean: list[float], std: list[float]
    ) -> None:
        super().__init__()
        import torchvision

        if not hasattr(torchvision.models, architecture):
            raise ModelLoadError(f"unknown torchvision architecture {architecture!r} in classifier config")
        self.net = getattr(torchvision.models, architecture)(weights=None, num_classes=num_classes)
        self.config = ClassifierConfig(in_channels=3, num_classes=num_classes, resolution=resolution)
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1))
        self._last_linear = [m for m in self.net.modules() if isinstance(m, nn.Linear)][-1]

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        x = F.interpolate((images + 1) / 2, size=(self.config.resolution,) * 2, mode="bilinear", align_corners=False)
        x = x.repeat(1, 3 // x.shape[1], 1, 1) if x.shape[1] == 1 else x
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(self._prepare(images))

    def features(self, images: torch.Tensor) -> torch.Tensor:
        captured = []
        handle = self._last_linear.register_forward_pre_hook(lambda _, inputs: captured.append(inputs[0]))
        try:
            self(images)
        finally:
            handle.remove()
        return captured[0]


def load_classifier(path: str | Path) -> Classifier:
    """Our digits CNN, or a torchvision architecture when config.json names one; safetensors weights only."""
    root = Path(path)
    weights = require_safetensors(root, WEIGHTS)
    if not (root / "config.json").is_file():
        raise ModelLoadError(f"missing {root / 'config.json'}: stage the classifier's config there")
    config = json.loads((root / "config.json").read_text())
    if "architecture" in config:
        model: Classifier = TorchvisionClassifier(
            config["architecture"],
            config["num_classes"],
            config.get("resolution", 224),
            config.get("mean", [0.485, 0.456, 0.406]),
            config.get("std", [0.229, 0.224, 0.225]),
        )
        model.net.load_state_dict(load_file(weights))
    else:
        model = ImageClassifier(ClassifierConfig(**config))
        model.load_state_dict(load_file(weights))
    return model.eval()


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to one pixel, so the evaluator tolerates generated digits that sit off-centre."""
    dx, dy = torch.randint(-1, 2, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(2, 3))


def train_classifier(
    train: LabeledImages, config: ClassifierConfig, epochs: int, seed: int, progress: bool = True
) -> ImageClassifier:
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = ImageClassifier(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for _ in tqdm(range(epochs), desc="classifier epochs", disable=not progress):
        order = torch.randperm(len(train), generator=generator)
        for start in range(0, len(train), 64):
            idx = order[start : start + 64]
            loss = F.cross_entropy(model(_shift(train.images[idx], generator)), train.labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def accuracy(model: Classifier, data: LabeledImages) -> float:
    return float((model.predict_proba(data.images).argmax(1) == data.labels).float().mean())
