"""The evaluator: a small CNN that says which digit an image shows (folder: config.json + model.safetensors)."""

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn
from tqdm.auto import tqdm

from .atomic import atomic_dir
from .datasets import LabeledImages
from .model_io import require_safetensors

WEIGHTS = "model.safetensors"


@dataclass(frozen=True)
class ClassifierConfig:
    in_channels: int = 1
    num_classes: int = 10
    resolution: int = 16
    width: int = 32
    feature_dim: int = 128


class ImageClassifier(nn.Module):
    """conv-conv-pool, conv-pool, linear -> features (penultimate layer), linear -> logits."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.body = nn.Sequential(
            nn.Conv2d(config.in_channels, w, 3, padding=1), nn.ReLU(),
            nn.Conv2d(w, w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(w, 2 * w, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * w * (config.resolution // 4) ** 2, config.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(config.feature_dim, config.num_classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))

    @torch.no_grad()
    def predict_proba(self, images: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
        self.eval()
        return torch.cat([F.softmax(self(images[i : i + batch_size]), dim=1) for i in range(0, len(images), batch_size)])

    def save_pretrained(self, path: Path) -> Path:
        with atomic_dir(Path(path)) as scratch:
            (scratch / "config.json").write_text(json.dumps(asdict(self.config), indent=2))
            save_file(self.state_dict(), scratch / WEIGHTS)
        return Path(path)

    @classmethod
    def from_pretrained(cls, path: str | Path) -> "ImageClassifier":
        root = Path(path)
        weights = require_safetensors(root, WEIGHTS)
        model = cls(ClassifierConfig(**json.loads((root / "config.json").read_text())))
        model.load_state_dict(load_file(weights))
        return model.eval()


def _shift(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random translation by up to one pixel, so the evaluator tolerates generated digits that sit off-centre."""
    dx, dy = torch.randint(-1, 2, (2,), generator=generator).tolist()
    return torch.roll(images, shifts=(dy, dx), dims=(2, 3))


def train_classifier(train: LabeledImages, config: ClassifierConfig, epochs: int, seed: int, progress: bool = True) -> ImageClassifier:
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


def accuracy(model: ImageClassifier, data: LabeledImages) -> float:
    return float((model.predict_proba(data.images).argmax(1) == data.labels).float().mean())
