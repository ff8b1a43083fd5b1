"""`erasediff evaluate` on a text-to-image pair (tiny random-weight SD built in code): nudity, CLIP score, FID,
grids."""

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import PROMPTS
from safetensors.torch import load_file, save_file

from erasediff.cli import main
from erasediff.data.digits import load_digits_split
from erasediff.data.images import save_png


@pytest.fixture(scope="module")
def unlearned_sd(tiny_sd_dir: Path, tmp_path_factory) -> Path:
    """The same pipeline with changed UNet weights, standing in for an unlearned model."""
    folder = Path(shutil.copytree(tiny_sd_dir, tmp_path_factory.mktemp("unlearned") / "pipeline"))
    weights = folder / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    state["conv_out.bias"] = state["conv_out.bias"] + 0.5
    save_file(state, weights)
    return folder


@pytest.fixture(scope="module")
def reference_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("real")
    images = load_digits_split()[1].images[:120]
    for i, image in enumerate(images):
        save_png(image.repeat(3, 1, 1), folder / f"{i:04d}.png")
    return folder


def write_config(tmp_path: Path, **fields) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(
        yaml.safe_dump({"task": "text-to-image", "steps": 2, "size": 16, "batch_size": 4, "grid_prompts": 4, **fields})
    )
    return path


def full_config(tmp_path: Path, clip_dir: Path, reference: Path) -> Path:
    return write_config(
        tmp_path,
        nudity={"prompts": str(PROMPTS), "limit": 4},
        captions={
            "prompts": str(PROMPTS),
            "clip_model": str(clip_dir),
            "reference_dir": str(reference),
            "fid": {"features": "clip", "cache_dir": str(tmp_path / "stats")},
        },
    )


def test_text_to_image_pair_side_by_side(
    capsys, tiny_sd_dir, unlearned_sd, digit_clip_dir, reference_dir, tmp_path: Path
) -> None:
    config = full_config(tmp_path, digit_clip_dir, reference_dir)
    results = []
    for run in ("first", "second"):
        args = [
            "evaluate",
            "--original",
            str(tiny_sd_dir),
            "--unlearned",
            str(unlearned_sd),
            "--config",
            str(config),
            "--out",
            str(tmp_path / run),
        ]
        assert main(args) == 0, capsys.readouterr().err
        results.append(json.loads((tmp_path / run / "results.json").read_text()))
    out = capsys.readouterr().out
    for row in ("| nudity_rate |", "| nudenet_feet |", "| clip_score |", "| fid_clip |"):
        assert row in out
    first = results[0]
    assert results[0]["models"] == results[1]["models"]  # same seeds, same numbers
    assert first["models"]["original"]["metrics"]["clip_score"] != first["models"]["unlearned"]["metrics"]["clip_score"]
    assert first["protocol"]["nudity"]["threshold"] == 0.6 and first["protocol"]["nudity"]["images"] == 4
    assert first["protocol"]["fid_clip"]["reference_images"] == 120
    assert {p.name for p in (tmp_path / "first" / "grids").iterdir()} == {"nudity.png", "captions.png"}
    manifest = (tmp_path / "first" / "samples-nudity-unlearned" / "manifest.jsonl").read_text().splitlines()
    assert len(manifest) == 4 and json.loads(manifest[0])["seed"] == 1001
    assert first["protocol"]["nudity"]["guidance"].startswith(
        "7.5 for every prompt"
    )  # the reference I2P protocol, recorded


def test_i2p_rows_render_at_the_fixed_guidance_unless_asked_otherwise(
    capsys, tiny_sd_dir, unlearned_sd, tmp_path: Path
) -> None:
    rows = tmp_path / "i2p.csv"
    rows.write_text("prompt,evaluation_seed,evaluation_guidance\na person,1,3.0\na statue,2,11.0\n")
    for name, guidance, expected in (("fixed", 7.5, [7.5, 7.5]), ("rows", None, [3.0, 11.0])):
        config = write_config(tmp_path, nudity={"prompts": str(rows), "guidance": guidance})
        out = tmp_path / name
        assert (
            main(
                [
                    "evaluate",
                    "--original",
                    str(tiny_sd_dir),
                    "--unlearned",
                    str(unlearned_sd),
                    "--config",
                    str(config),
                    "--out",
                    str(out),
                ]
            )
            == 0
        ), capsys.readouterr().err
        manifest = [
            json.loads(line) for line in (out / "samples-nudity-original" / "manifest.jsonl").read_text().splitlines()
        ]
        assert [m["guidance"] for m in manifest] == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "set nudity, captions or classes"),
        ({"nudity": {"prompts": "/nowhere/i2p.csv"}}, "cannot read prompt file /nowhere/i2p.csv"),
        (
            {"captions": {"prompts": str(PROMPTS), "clip_model": "/nowhere/clip"}},
            "model folder not found: /nowhere/clip",
        ),
        (
            {
                "captions": {
                    "prompts": str(PROMPTS),
                    "clip_model": "/nowhere/clip",
                    "reference_dir": "/tmp",
                    "fid": {"features": "classifier"},
                }
            },
            "needs a class-conditional evaluation",
        ),
        ({"nudity": {"prompts": str(PROMPTS), "threshold": 1.5}}, "nudity.threshold"),
    ],
    ids=["nothing", "missing-csv", "missing-clip", "classifier-fid", "bad-threshold"],
)
def test_text_to_image_errors(capsys, tiny_sd_dir, unlearned_sd, tmp_path: Path, fields: dict, message: str) -> None:
    args = [
        "evaluate",
        "--original",
        str(tiny_sd_dir),
        "--unlearned",
        str(unlearned_sd),
        "--config",
        str(write_config(tmp_path, **fields)),
        "--out",
        str(tmp_path / "out"),
    ]
    code = main(args)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "results.json").exists()
