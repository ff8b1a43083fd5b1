"""Stable Diffusion component configurations as published (SD 1.5, SDXL): the shapes every SD-size benchmark builds
with random weights, so that bytes, memory and seconds are real while no weight is downloaded; and the folders they
make (a diffusers pipeline, a CLIP model), with a word tokenizer built locally."""

from pathlib import Path

SD15_FP16_GB = 2.1  # UNet, text encoder and VAE of SD 1.5 in fp16 (about 1.07 billion parameters)
SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    cross_attention_dim=768,
    attention_head_dim=8,
)


def sd15_unet(width_divisor: int = 1) -> dict:
    """SD 1.5's UNet configuration, its channel widths divided by `width_divisor` (10 keeps every width a multiple of
    the 32 norm groups): the same blocks, attention layout and 512 px latents at a fraction of the bytes, for tests."""
    return {**SD15_UNET, "block_out_channels": tuple(c // width_divisor for c in SD15_UNET["block_out_channels"])}


SDXL_UNET = dict(
    sample_size=128,
    in_channels=4,
    out_channels=4,
    layers_per_block=2,
    block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10),
    attention_head_dim=(5, 10, 20),
    cross_attention_dim=2048,
    use_linear_projection=True,
    addition_embed_type="text_time",
    addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816,
)
SDXL_TEXT_EMBEDS, SDXL_TIME_IDS = 1280, 6  # the added conditioning SDXL's UNet reads: pooled text, size and crop ids


def unet_config(unet: str, width_divisor: int = 1) -> dict:
    """`sd15` (reducible in width, for tests) or `sdxl` (published widths only)."""
    if unet == "sd15":
        return sd15_unet(width_divisor)
    if width_divisor != 1:
        raise ValueError("the SDXL UNet is built at its published widths only")
    return SDXL_UNET


VAE = dict(
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
)
CLIP_L = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
)
CLIP_BIGG = dict(
    vocab_size=49408,
    hidden_size=1280,
    intermediate_size=5120,
    num_hidden_layers=32,
    num_attention_heads=20,
    max_position_embeddings=77,
    projection_dim=1280,
)
CLIP_VIT_L14 = dict(
    hidden_size=1024,
    intermediate_size=4096,
    num_hidden_layers=24,
    num_attention_heads=16,
    image_size=224,
    patch_size=14,
)


def _tokenizer(words: tuple[str, ...] | list[str]):
    from erasediff.models.clip import build_word_tokenizer

    tokenizer = build_word_tokenizer(words, max_length=77)
    return tokenizer, {f"{k}_token_id": getattr(tokenizer, f"{k}_token_id") for k in ("bos", "eos", "pad")}


def build_sd15(out: Path, words: tuple[str, ...] = ("a", "photo", "of", "person", "nude", "naked", "clothes")) -> Path:
    """A random-weight SD 1.5 pipeline folder (UNet, VAE, CLIP ViT-L text encoder; fp32 safetensors), nothing
    downloaded; its tokenizer knows `words` only."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    tokenizer, ids = _tokenizer(words)
    pipe = StableDiffusionPipeline(
        vae=AutoencoderKL(**VAE),
        text_encoder=CLIPTextModel(CLIPTextConfig(**CLIP_L, **ids)),
        tokenizer=tokenizer,
        unet=UNet2DConditionModel(**SD15_UNET),
        scheduler=DDIMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", clip_sample=False),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)
    return out


def build_clip_l14(out: Path, words: list[str]) -> Path:
    """A random-weight CLIP ViT-L/14 folder (what CLIP score and CLIP-feature FID load), tokenizer of `words`."""
    import json

    import torch
    from transformers import CLIPConfig, CLIPModel

    from erasediff.models.clip import CLIP_MEAN, CLIP_STD

    torch.manual_seed(1)
    tokenizer, ids = _tokenizer(words)
    config = CLIPConfig(text_config={**CLIP_L, **ids}, vision_config=CLIP_VIT_L14, projection_dim=768)
    CLIPModel(config).save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    (out / "preprocessor_config.json").write_text(json.dumps({"image_mean": CLIP_MEAN, "image_std": CLIP_STD}))
    return out
