"""CLIP score: 100 * max(cos(image embedding, prompt embedding), 0), averaged (torchmetrics' definition),
with a transformers CLIP model from a local folder.
"""

from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path

import torch
import torch.nn.functional as F
from cleanfid.resize import make_resizer

from erasediff.data.images import to_rgb_uint8
from erasediff.models.clip import load_clip
from erasediff.util.errors import DataError
from erasediff.util.hashing import file_hash


@dataclass
class ClipScore:
    mean: float
    per_image: list[float]
    protocol: dict = field(default_factory=dict)


@torch.no_grad()
def clip_score(images: torch.Tensor, prompts: list[str], model_dir: str | Path, batch_size: int = 64) -> ClipScore:
    """Images (N, C, H, W) in [-1, 1], one prompt each."""
    if len(images) != len(prompts) or not prompts:
        raise DataError(f"CLIP score needs one prompt per image, got {len(images)} images and {len(prompts)} prompts")
    model, tokenizer, size, mean, std = load_clip(model_dir)
    resize = make_resizer("PIL", False, "bicubic", (size, size))
    scores = []
    for start in range(0, len(prompts), batch_size):
        pixels = torch.stack(
            [
                torch.from_numpy(resize(p).copy()).permute(2, 0, 1)
                for p in to_rgb_uint8(images[start : start + batch_size])
            ]
        )
        x = (pixels.float() / 255 - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
        tokens = tokenizer(
            prompts[start : start + batch_size],
            padding="max_length",
            truncation=True,
            max_length=model.config.text_config.max_position_embeddings,
            return_tensors="pt",
        )
        image_emb = model.get_image_features(pixel_values=x).pooler_output
        text_emb = model.get_text_features(
            input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
        ).pooler_output
        scores += (100 * F.cosine_similarity(image_emb, text_emb).clamp_min(0)).tolist()
    protocol = {
        "implementation": "CLIP score 100*max(cos,0) (torchmetrics definition)",
        "model": str(model_dir),
        "weights_sha256": file_hash(Path(model_dir) / "model.safetensors"),
        "transformers_version": version("transformers"),
        "images": len(prompts),
    }
    return ClipScore(sum(scores) / len(scores), scores, protocol)
