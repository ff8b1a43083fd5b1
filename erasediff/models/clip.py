"""Local CLIP models (transformers folders) and a tiny one built in code for offline tests.

The tiny model's tokenizer is a word-level `tokenizers` model the project builds itself (transformers 5
ignores `CLIPTokenizer(vocab_file=...)`), wrapped in PreTrainedTokenizerFast so it saves and loads
like any tokenizer.
"""

import json
from pathlib import Path

import torch
from transformers import CLIPModel, PreTrainedTokenizerBase

from erasediff.models.class_model import require_safetensors
from erasediff.util.errors import ModelLoadError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)


CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


BOS, EOS, PAD, UNK = "<|startoftext|>", "<|endoftext|>", "<pad>", "<unk>"


def build_word_tokenizer(words: list[str], max_length: int = 16):
    """A lower-cased whitespace word tokenizer with CLIP's start/end tokens."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate([PAD, UNK, BOS, EOS, *sorted({w.lower() for w in words})])}
    core = Tokenizer(WordLevel(vocab, unk_token=UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK, model_max_length=max_length
    )


def load_clip(path: str | Path) -> tuple[CLIPModel, PreTrainedTokenizerBase, int, torch.Tensor, torch.Tensor]:
    """(model, tokenizer, image size, pixel mean, pixel std) from a local folder; safetensors only."""
    from transformers import AutoTokenizer

    root = Path(path)
    require_safetensors(root, "model.safetensors")
    try:
        model = CLIPModel.from_pretrained(root, local_files_only=True, use_safetensors=True).eval()
        tokenizer = AutoTokenizer.from_pretrained(root, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"cannot load CLIP model from {root}: {str(exc).splitlines()[0]}") from exc
    pre = (
        json.loads((root / "preprocessor_config.json").read_text())
        if (root / "preprocessor_config.json").is_file()
        else {}
    )
    mean = torch.tensor(pre.get("image_mean", CLIP_MEAN))
    std = torch.tensor(pre.get("image_std", CLIP_STD))
    return model, tokenizer, model.config.vision_config.image_size, mean, std
