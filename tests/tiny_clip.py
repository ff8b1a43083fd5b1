"""A tiny CLIP for offline tests, built in code and trained contrastively on captioned digits
("a photo of the digit seven") so that CLIP score and CLIP features measure something real in tests.
"""

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerBase

from erasediff.data.digits import DIGIT_NAMES
from erasediff.data.image_sets import LabeledImages
from erasediff.models.clip import CLIP_MEAN, CLIP_STD, build_word_tokenizer


def build_tiny_clip(words: list[str], image_size: int = 32, seed: int = 0) -> tuple[CLIPModel, PreTrainedTokenizerBase]:
    """Random-weight CLIP small enough for CPU tests (it measures nothing real; it exercises the code)."""
    tokenizer = build_word_tokenizer(words)
    torch.manual_seed(seed)
    text = dict(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=tokenizer.model_max_length,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    vision = dict(
        image_size=image_size,
        patch_size=8,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
    )
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval(), tokenizer


def save_clip(model: CLIPModel, tokenizer: PreTrainedTokenizerBase, path: Path) -> Path:
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    (Path(path) / "preprocessor_config.json").write_text(
        json.dumps({"image_mean": list(CLIP_MEAN), "image_std": list(CLIP_STD)})
    )
    return Path(path)


CAPTION = "a photo of the digit {}"


def digit_captions() -> list[str]:
    return [CAPTION.format(name) for name in DIGIT_NAMES]


def _pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] grey digits -> CLIP-normalised RGB at the model's input size."""
    x = (
        F.interpolate((images + 1) / 2, size=(size, size), mode="bicubic", align_corners=False)
        .clamp(0, 1)
        .repeat(1, 3, 1, 1)
    )
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_digit_clip(
    train: LabeledImages, steps: int = 300, batch_size: int = 64, seed: int = 0, progress: bool = True
) -> tuple[CLIPModel, PreTrainedTokenizerBase]:
    captions = digit_captions()
    model, tokenizer = build_tiny_clip(" ".join(captions).split(), seed=seed)
    tokens = tokenizer(captions, padding="max_length", max_length=tokenizer.model_max_length, return_tensors="pt")
    size = model.config.vision_config.image_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in tqdm(range(steps), desc="tiny CLIP", disable=not progress):
        idx = torch.randint(len(train), (batch_size,), generator=generator)
        labels = train.labels[idx]
        image_emb = F.normalize(
            model.get_image_features(pixel_values=_pixels(train.images[idx], size)).pooler_output, dim=-1
        )
        text_emb = F.normalize(
            model.get_text_features(
                input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
            ).pooler_output,
            dim=-1,
        )
        logits = model.logit_scale.exp() * image_emb @ text_emb.T  # (batch, 10 captions)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer
