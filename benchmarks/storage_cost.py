"""Bytes a registered version adds to the registry, per trainable-parameter preset.

Measured on the tiny text-to-image model: its base pipeline is stored first (as the first version stores it), then a
version in which every tensor of the preset changed (as an erasure changes every tensor it trains) is packed with
`erasediff/storage/parts.py`; what it adds is its cost. For Stable Diffusion 1.5 and SDXL the same share follows
from parameter counts: the components built from their published configurations on the meta device (no weights).

    .venv/bin/python benchmarks/storage_cost.py            # a table, in seconds
    .venv/bin/python benchmarks/storage_cost.py --readme   # and into README.md
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from readme_section import publish
from safetensors.torch import load_file, save_file
from sd_update_cost import SD15_UNET
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from erasediff.defaults.text_digits import text_digits_default
from erasediff.method.params import select_parameters
from erasediff.storage.parts import FolderBlobs, pack

PRESETS = ("full", "noxattn", "xattn")
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"
SDXL_UNET = dict(sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), transformer_layers_per_block=(1, 2, 10),
                 attention_head_dim=(5, 10, 20), cross_attention_dim=2048, use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
           layers_per_block=2, latent_channels=4)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77)
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                 max_position_embeddings=77, projection_dim=1280)


def tiny_shares() -> dict[str, float]:
    """Bytes added by a version whose preset tensors all changed, over the pipeline's bytes (measured)."""
    base = text_digits_default(progress=False)
    shares = {}
    with tempfile.TemporaryDirectory() as scratch:
        unet = UNet2DConditionModel.from_pretrained(base / "unet")
        for preset in PRESETS:
            blobs = FolderBlobs(Path(scratch) / f"blobs-{preset}")  # a registry holding the base only
            pack(base, blobs)
            changed = Path(shutil.copytree(base, Path(scratch) / preset))
            state = load_file(changed / UNET_FILE)
            for name in select_parameters(unet, preset):
                state[name] = state[name] + 1e-3
            save_file(state, changed / UNET_FILE, metadata={"format": "pt"})
            manifest, added = pack(changed, blobs)
            shares[preset] = added / manifest["bytes"]
    return shares


def counted_shares(unet_config: dict, encoders: list[torch.nn.Module]) -> dict[str, float]:
    """A preset's UNet parameters over every parameter of the pipeline (same dtype throughout)."""
    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**unet_config), AutoencoderKL(**VAE)
    total = sum(p.numel() for m in [unet, vae, *encoders] for p in m.parameters())
    return {preset: sum(p.numel() for p in select_parameters(unet, preset).values()) / total for preset in PRESETS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--readme", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with torch.device("meta"):
        clip_l, clip_bigg = CLIPTextModel(CLIPTextConfig(**CLIP_L)), CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG))
    rows = {"tiny text model (measured)": tiny_shares(), "SD 1.5 (parameter counts)": counted_shares(SD15_UNET, [clip_l]),
            "SDXL (parameter counts)": counted_shares(SDXL_UNET, [clip_l, clip_bigg])}
    lines = ["| model | " + " | ".join(f"preset {p}" for p in PRESETS) + " |", "|---|" + "---:|" * len(PRESETS)]
    lines += [f"| {model} | " + " | ".join(f"{100 * shares[p]:.1f} %" for p in PRESETS) + " |" for model, shares in rows.items()]
    report = "\n".join(["Bytes a version adds to the registry, as a share of its complete pipeline (the base stored once before it):", "", *lines])
    publish(args.out, "storage_cost", report, rows, "storage-cost" if args.readme else None)


if __name__ == "__main__":
    main()
