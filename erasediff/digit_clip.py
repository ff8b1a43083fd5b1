"""A tiny CLIP trained contrastively on digits with captions ("a photo of the digit seven").

It gives the CLIP-score code a model that knows something, so its sanity test can check that the
score moves the right way (matching captions score higher than mismatched ones). Trained on CPU in
well under a minute; random initialisation would only exercise the code path.
"""

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import CLIPModel, PreTrainedTokenizerBase

from .clip_model import CLIP_MEAN, CLIP_STD, build_tiny_clip
from .datasets import LabeledImages
from .digits import DIGIT_NAMES

CAPTION = "a photo of the digit {}"


def digit_captions() -> list[str]:
    return [CAPTION.format(name) for name in DIGIT_NAMES]


def _pixels(images: torch.Tensor, size: int) -> torch.Tensor:
    """[-1, 1] grey digits -> CLIP-normalised RGB at the model's input size."""
    x = F.interpolate((images + 1) / 2, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1).repeat(1, 3, 1, 1)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_digit_clip(train: LabeledImages, steps: int = 300, batch_size: int = 64, seed: int = 0, progress: bool = True) -> tuple[CLIPModel, PreTrainedTokenizerBase]:
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
        image_emb = F.normalize(model.get_image_features(pixel_values=_pixels(train.images[idx], size)).pooler_output, dim=-1)
        text_emb = F.normalize(model.get_text_features(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]).pooler_output, dim=-1)
        logits = model.logit_scale.exp() * image_emb @ text_emb.T  # (batch, 10 captions)
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), tokenizer
