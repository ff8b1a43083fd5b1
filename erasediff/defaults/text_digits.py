"""`train-text-digits`: a tiny Stable-Diffusion-shaped text-to-image model, trained here on captioned digits.

Real SD weights cannot be downloaded here, so concept erasure is proven on this model: the same
`StableDiffusionPipeline` layout (VAE + CLIP text encoder + tokenizer + UNet2DConditionModel +
scheduler), only tiny. A VAE is trained first (16x16 RGB digits <-> 4x8x8 latents), then the UNet in
latent space on captions such as "a photo of the digit seven" (caption dropout to "" gives
classifier-free guidance its unconditional branch). The CLIP text encoder is trained jointly with the
UNet (a random one barely tells "seven" from "one") and frozen afterwards, as SD's pretrained one is
frozen during erasure. The package ships one trained folder
(`erasediff/assets/text-digits-<hash>/`), produced by this module with the recorded config and seed.
"""

import json
import logging
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from pydantic import Field
from tqdm.auto import tqdm
from transformers import CLIPTextConfig, CLIPTextModel

from erasediff.data.digits import DIGIT_NAMES, load_digits_split
from erasediff.data.prompts import PromptRow
from erasediff.defaults.training import train_step
from erasediff.models.clip import build_word_tokenizer
from erasediff.models.text_encoding import encode_images
from erasediff.util.atomic import atomic_dir
from erasediff.util.cache import PACKAGED_ROOT, default_cache_root
from erasediff.util.config import Strict
from erasediff.util.hashing import config_hash

log = logging.getLogger(__name__)

TEMPLATES = ("a photo of the digit {}", "a handwritten {}", "the number {}")


PIPELINE_DIR, RECORD = "pipeline", "train_record.json"


EXTRA_WORDS = (
    "a photo of person wearing clothes nude naked erotic sexual painting in the style drawing portrait".split()
)


class TextDigitsConfig(Strict):
    seed: int = 0
    vae_steps: int = 300
    vae_lr: float = 2e-3
    kl_weight: float = 1e-6
    unet_steps: int = 1600
    batch_size: int = 32
    lr: float = 1e-3
    ema_decay: float = 0.995
    caption_dropout: float = Field(0.1, ge=0, lt=1)
    unet_channels: list[int] = [32, 64]
    quality_per_class: int = 20
    quality_steps: int = 25
    quality_guidance: float = 4.0


def caption_of(digit: int, template: str) -> str:
    return template.format(DIGIT_NAMES[digit])


def digit_captions() -> list[tuple[str, int]]:
    """(caption, digit) for every template and digit."""
    return [(caption_of(digit, t), digit) for digit in range(len(DIGIT_NAMES)) for t in TEMPLATES]


def digit_prompt_rows(per_class: int, seed: int, digits: list[int] | None = None) -> list[tuple[PromptRow, int]]:
    """Evaluation prompts cycling through the templates, each with its own seed, and the digit it asks for."""
    rows = []
    for digit in digits if digits is not None else range(len(DIGIT_NAMES)):
        for i in range(per_class):
            rows.append(
                (PromptRow(caption_of(digit, TEMPLATES[i % len(TEMPLATES)]), seed + 1000 * digit + i, None), digit)
            )
    return rows


PARAPHRASE_TEMPLATES = (
    "{}",
    "a {}",
    "the {}",
    "the digit {}",
    "a digit {}",
    "number {}",
    "a number {}",
    "a photo of {}",
    "a photo of the number {}",
    "a drawing of the digit {}",
    "a painting of the number {}",
    "a handwritten digit {}",
    "the handwritten number {}",
    "a portrait of the digit {}",
    "a photo of a handwritten {}",
    "a drawing of a {}",
)  # never trained on: the paraphrase attack's


def digit_paraphrase_rows(per_template: int = 4) -> list[tuple[PromptRow, int]]:
    """Held-out phrasings of every digit from the model's own vocabulary
    (erasediff/assets/prompts/digit_paraphrases.csv)."""
    return [
        (PromptRow(t.format(DIGIT_NAMES[digit]), 200_000 + 1000 * digit + per_template * j + i, None), digit)
        for digit in range(len(DIGIT_NAMES))
        for j, t in enumerate(PARAPHRASE_TEMPLATES)
        for i in range(per_template)
    ]


def build_pipeline(config: TextDigitsConfig) -> StableDiffusionPipeline:
    """Random-weight components of the tiny model (16x16 RGB images, 4x8x8 latents)."""
    torch.manual_seed(config.seed)
    words = " ".join(c for c, _ in digit_captions()).split() + EXTRA_WORDS
    tokenizer = build_word_tokenizer(words)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
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
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 32),
        layers_per_block=1,
        latent_channels=4,
        down_block_types=("DownEncoderBlock2D",) * 2,
        up_block_types=("UpDecoderBlock2D",) * 2,
        norm_num_groups=8,
        sample_size=16,
    )
    # cross-attention at 4x4 and in the mid block only: the digit is a global property, and 8x8 attention costs most
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=tuple(config.unet_channels),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=8,
    )
    scheduler = DDIMScheduler(
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=False, steps_offset=1
    )
    return StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder.eval(),
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )


def train_vae(vae: AutoencoderKL, images: torch.Tensor, config: TextDigitsConfig, progress: bool = True) -> float:
    """Reconstruction + tiny KL; then set scaling_factor so latents have unit variance (as SD did). Returns the final
    MSE."""
    generator = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(vae.parameters(), lr=config.vae_lr)
    vae.train()
    mse = float("nan")
    for _ in tqdm(range(config.vae_steps), desc="VAE training", disable=not progress):
        x = images[torch.randint(len(images), (config.batch_size,), generator=generator)]
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample(generator)).sample
        loss = F.mse_loss(recon, x)
        mse = loss.item()
        optimizer.zero_grad(set_to_none=True)
        (loss + config.kl_weight * posterior.kl().mean()).backward()
        optimizer.step()
    vae.eval().requires_grad_(False)
    with torch.no_grad():
        std = float(vae.encode(images[:512]).latent_dist.mode().std())
    vae.register_to_config(scaling_factor=1.0 / std)
    return mse


def train_unet(
    pipe: StableDiffusionPipeline,
    latents: torch.Tensor,
    digits: torch.Tensor,
    config: TextDigitsConfig,
    progress: bool = True,
    stop_after: int | None = None,
    train_text_encoder: bool = True,
) -> None:
    """Epsilon-prediction training on random captions of each image's digit, text encoder jointly; EMA weights kept
    (`stop_after`: at that step of the recipe, a run stopped half-way for the gate-power benchmark).

    A random text encoder barely separates "seven" from "one" (the template dominates its output), so
    the encoder learns with the UNet here and is frozen afterwards, like SD's pretrained CLIP. The retrained
    gold standard keeps the base's trained encoder frozen (`train_text_encoder=False`), as SD retrained
    without a concept would keep its pretrained CLIP.
    """
    captions = digit_captions()
    tokens = pipe.tokenizer(
        [c for c, _ in captions] + [""],
        padding="max_length",
        max_length=pipe.tokenizer.model_max_length,
        truncation=True,
        return_tensors="pt",
    ).input_ids
    per_digit = torch.tensor(
        [[i for i, (_, d) in enumerate(captions) if d == digit] for digit in range(len(DIGIT_NAMES))]
    )
    empty = len(captions)
    generator = torch.Generator().manual_seed(config.seed + 1)
    unet, text_encoder = (
        pipe.unet.train(),
        pipe.text_encoder.train(train_text_encoder).requires_grad_(train_text_encoder),
    )
    noise_scheduler = DDPMScheduler.from_config(pipe.scheduler.config)
    models = torch.nn.ModuleDict({"unet": unet, "text_encoder": text_encoder} if train_text_encoder else {"unet": unet})
    ema = {k: v.detach().clone() for k, v in models.state_dict().items()}
    optimizer = torch.optim.AdamW(models.parameters(), lr=config.lr, weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=config.lr, total_steps=config.unet_steps, pct_start=0.05
    )
    for _ in tqdm(range(stop_after or config.unet_steps), desc="text UNet training", disable=not progress):
        idx = torch.randint(len(latents), (config.batch_size,), generator=generator)
        x0 = latents[idx]
        ids = per_digit[digits[idx], torch.randint(len(TEMPLATES), (config.batch_size,), generator=generator)]
        ids[torch.rand(config.batch_size, generator=generator) < config.caption_dropout] = empty
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.randint(0, noise_scheduler.config.num_train_timesteps, (config.batch_size,), generator=generator)
        with torch.set_grad_enabled(train_text_encoder):
            hidden = text_encoder(tokens)[0]  # all 31 prompts at once: cheaper than per-sample encoding
        loss = F.mse_loss(
            unet(noise_scheduler.add_noise(x0, noise, t), t, encoder_hidden_states=hidden[ids]).sample, noise
        )
        train_step(loss, models, optimizer, schedule, ema, config.ema_decay)
    models.load_state_dict(ema)
    models.eval().requires_grad_(False)
    text_encoder.eval().requires_grad_(False)


def digit_prompt_accuracy(
    pipe: StableDiffusionPipeline, classifier, config: TextDigitsConfig, progress: bool = True
) -> dict[int, float]:
    """Share of each digit's prompt samples that the evaluator reads as that digit."""
    from erasediff.evaluation.class_accuracy import score_samples
    from erasediff.models.sampling import sample_prompts, to_channels

    rows = digit_prompt_rows(config.quality_per_class, seed=config.seed)
    images = sample_prompts(
        pipe, [r for r, _ in rows], config.quality_steps, config.quality_guidance, batch_size=100, progress=progress
    )
    scores = score_samples(
        classifier, to_channels(images, classifier.config.in_channels), torch.tensor([d for _, d in rows])
    )
    return {c: s.accuracy for c, s in scores.items()}


def find_text_digits(config: TextDigitsConfig, roots: list[Path]) -> Path | None:
    name = f"text-digits-{config_hash(config.model_dump())}"
    return next((root / name for root in roots if (root / name / RECORD).is_file()), None)


def train_text_digits(
    config: TextDigitsConfig, root: Path | None = None, force: bool = False, progress: bool = True
) -> Path:
    """Train (or reuse) the tiny text-to-image digits model; return its folder (pipeline/ + train_record.json)."""
    from erasediff.defaults.digits_models import digits_default

    root = root or default_cache_root()
    if not force and (found := find_text_digits(config, [PACKAGED_ROOT, root])) is not None:
        return found
    train, _ = load_digits_split(seed=config.seed)
    images = train.images.repeat(1, 3, 1, 1)
    started = time.time()
    pipe = build_pipeline(config)
    vae_mse = train_vae(pipe.vae, images, config, progress)
    train_unet(pipe, encode_images(pipe, images, batch_size=256, progress=False), train.labels, config, progress)
    seconds = time.time() - started
    accuracy = digit_prompt_accuracy(pipe, digits_default(progress=False)[1], config, progress)
    record = {
        "config": config.model_dump(),
        "config_hash": config_hash(config.model_dump()),
        "train_seconds": round(seconds, 1),
        "torch_threads": torch.get_num_threads(),
        "vae_reconstruction_mse": vae_mse,
        "prompt_accuracy": accuracy,
        "mean_prompt_accuracy": sum(accuracy.values()) / len(accuracy),
    }
    log.info(
        f"trained in {seconds:.0f} s; VAE reconstruction MSE {vae_mse:.4f}; digit prompts read as their digit: "
        + ", ".join(f"{DIGIT_NAMES[c]} {a:.0%}" for c, a in accuracy.items())
    )
    target = root / f"text-digits-{record['config_hash']}"
    with atomic_dir(target, replace=force) as scratch:
        pipe.save_pretrained(scratch / PIPELINE_DIR, safe_serialization=True)
        (scratch / RECORD).write_text(json.dumps(record, indent=2))
    return target


def text_digits_default(progress: bool = True) -> Path:
    """The packaged (or cached, or freshly trained) tiny text-to-image pipeline folder."""
    return train_text_digits(TextDigitsConfig(), progress=progress) / PIPELINE_DIR
