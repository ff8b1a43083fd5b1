"""Bytes a registered version adds to the registry, per trainable-parameter preset, with full weights or a LoRA adapter.

Measured on the tiny text-to-image model: its base pipeline is stored first (as the first version stores it), then a
version in which every tensor of the preset changed (as an erasure changes every tensor it trains), or an adapter
version as `save_text_pipeline` writes it (the base UNet unchanged plus the LoRA), is packed with
`erasediff/storage/parts.py`; what it adds is its cost. For Stable Diffusion 1.5 and SDXL the same share follows
from parameter counts: the components built from their published configurations on the meta device (no weights).

    .venv/bin/python benchmarks/storage_cost.py            # a table, in seconds
    .venv/bin/python benchmarks/storage_cost.py --publish   # and into docs/results/storage-cost.md
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from results_page import publish
from safetensors.torch import load_file, save_file
from sd_shapes import CLIP_BIGG, CLIP_L, SD15_UNET, SDXL_UNET, VAE
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

from erasediff.defaults.text_digits import text_digits_default
from erasediff.method.params import select_parameters
from erasediff.models.lora import AdapterSettings, add_adapter
from erasediff.models.text_pipeline import save_text_pipeline
from erasediff.storage.parts import FolderBlobs, pack

PRESETS = ("full", "noxattn", "xattn", "xattn_kv")
ADAPTERS = (("noxattn", 4), ("noxattn", 1), ("xattn", 4))  # (preset, LoRA rank)
UNET_FILE = "unet/diffusion_pytorch_model.safetensors"


def _column(preset: str, rank: int | None = None) -> str:
    return f"preset {preset}" if rank is None else f"LoRA r={rank} on {preset}"


def tiny_shares() -> dict[str, float]:
    """Bytes added by a version whose preset tensors all changed, or by an adapter version, over the pipeline's bytes
    (measured)."""
    base = text_digits_default(progress=False)
    shares = {}
    with tempfile.TemporaryDirectory() as scratch:

        def added_by(name: str, write) -> float:
            blobs = FolderBlobs(Path(scratch) / f"blobs-{name}")  # a registry holding the base only
            pack(base, blobs)
            manifest, added = pack(write(Path(scratch) / name), blobs)
            return added / manifest["bytes"]

        def full_weights(preset: str):
            def write(folder: Path) -> Path:
                shutil.copytree(base, folder)
                state = load_file(folder / UNET_FILE)
                for name in select_parameters(UNet2DConditionModel.from_pretrained(base / "unet"), preset):
                    state[name] = state[name] + 1e-3
                save_file(state, folder / UNET_FILE, metadata={"format": "pt"})
                return folder

            return write

        def adapter(preset: str, rank: int):
            def write(folder: Path) -> Path:
                unet = UNet2DConditionModel.from_pretrained(base / "unet")
                lora = add_adapter(unet, select_parameters(unet, preset), AdapterSettings(rank=rank))
                with torch.no_grad():
                    for p in lora.values():
                        p.add_(1e-3)
                return save_text_pipeline(base, unet, folder, {})

            return write

        for preset in PRESETS:
            shares[_column(preset)] = added_by(preset, full_weights(preset))
        for preset, rank in ADAPTERS:
            shares[_column(preset, rank)] = added_by(f"lora-{preset}-{rank}", adapter(preset, rank))
    return shares


def counted_shares(unet_config: dict, encoders: list[torch.nn.Module]) -> dict[str, float]:
    """A preset's UNet parameters, or its LoRA's, over every parameter of the pipeline (same dtype throughout)."""
    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**unet_config), AutoencoderKL(**VAE)
    total = sum(p.numel() for m in [unet, vae, *encoders] for p in m.parameters())
    shares = {
        _column(preset): sum(p.numel() for p in select_parameters(unet, preset).values()) / total for preset in PRESETS
    }
    for preset, rank in ADAPTERS:
        with torch.device("meta"):
            adapted = UNet2DConditionModel(**unet_config)
            lora = add_adapter(adapted, select_parameters(adapted, preset), AdapterSettings(rank=rank))
        shares[_column(preset, rank)] = sum(p.numel() for p in lora.values()) / total
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", action="store_true", help="write docs/results/storage-cost.md")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    with torch.device("meta"):
        clip_l, clip_bigg = (
            CLIPTextModel(CLIPTextConfig(**CLIP_L)),
            CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG)),
        )
    rows = {
        "tiny text model (measured)": tiny_shares(),
        "SD 1.5 (parameter counts)": counted_shares(SD15_UNET, [clip_l]),
        "SDXL (parameter counts)": counted_shares(SDXL_UNET, [clip_l, clip_bigg]),
    }
    columns = [_column(p) for p in PRESETS] + [_column(p, r) for p, r in ADAPTERS]
    lines = ["| model | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    lines += [
        f"| {model} | " + " | ".join(f"{100 * shares[c]:.2f} %" for c in columns) + " |"
        for model, shares in rows.items()
    ]
    report = "\n".join(
        [
            "Bytes a version adds to the registry, as a share of its complete pipeline (the base stored once before "
            "it):",
            "",
            *lines,
        ]
    )
    publish(args.out, "storage_cost", report, rows, "storage-cost" if args.publish else None, "What a version stores")


if __name__ == "__main__":
    main()
