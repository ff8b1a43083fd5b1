"""Bad input through the CLI: one `error:` line, non-zero exit, base folder byte-identical, nothing promoted."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from diffusers import UNet2DModel
from safetensors.torch import load_file, save_file

from erasediff.cli import main
from erasediff.models.class_model import UNET_WEIGHTS, ClassDiffusionModel, save_class_model
from erasediff.util.hashing import folder_hash

FAST = {
    "unlearning": {"steps": 3, "batch_size": 8, "forget_batch_size": 8},
    "evaluation": {"samples_per_class": 2, "steps": 2},
}


def write_config(tmp_path: Path, **fields) -> Path:
    config = {"forget_classes": [3], "output_dir": str(tmp_path / "out"), **FAST, **fields}
    path = tmp_path / "request.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def run_cli(capsys, *args: str) -> tuple[int, list[str]]:
    code = main(["unlearn", *args])
    return code, capsys.readouterr().err.strip().splitlines()


def assert_refused(code: int, err: list[str], pattern: str, tmp_path: Path) -> None:
    assert code == 2
    errors = [line for line in err if line.startswith("error:")]
    assert len(errors) == 1 and err[-1] == errors[0], err  # progress bars may precede it
    assert pattern in errors[0], errors[0]
    assert not (tmp_path / "out" / "model").exists()


def test_successful_run_writes_everything_and_leaves_base_alone(capsys, model_copy: Path, tmp_path: Path) -> None:
    before = folder_hash(model_copy)
    code = main(["unlearn", str(write_config(tmp_path, model=str(model_copy)))])
    assert code == 0, capsys.readouterr().err
    out = tmp_path / "out"
    for name in [
        "model/unet/diffusion_pytorch_model.safetensors",
        "metrics.jsonl",
        "unlearning_curves.png",
        "samples_before_after.png",
        "evaluation.json",
    ]:
        assert (out / name).is_file(), name
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 3
    assert folder_hash(model_copy) == before
    assert "forgotten classes mean accuracy" in capsys.readouterr().out


def test_missing_model_dir(capsys, tmp_path: Path) -> None:
    code, err = run_cli(capsys, str(write_config(tmp_path, model=str(tmp_path / "no-such-model"))))
    assert_refused(code, err, "model folder not found", tmp_path)


def test_pickle_only_checkpoint(capsys, model_copy: Path, tmp_path: Path) -> None:
    weights = model_copy / "unet" / UNET_WEIGHTS
    weights.rename(weights.with_name("diffusion_pytorch_model.bin"))
    before = folder_hash(model_copy)
    code, err = run_cli(capsys, str(write_config(tmp_path, model=str(model_copy))))
    assert_refused(code, err, "pickle checkpoint", tmp_path)
    assert "convert it to safetensors" in err[-1]
    assert folder_hash(model_copy) == before


def test_forgotten_class_outside_model(capsys, model_copy: Path, tmp_path: Path) -> None:
    before = folder_hash(model_copy)
    code, err = run_cli(capsys, str(write_config(tmp_path, model=str(model_copy), forget_classes=[10])))
    assert_refused(code, err, "forget class 10 is outside the model's classes 0..9", tmp_path)
    assert folder_hash(model_copy) == before


def test_empty_forget_set(capsys, tmp_path: Path) -> None:
    """A 12-class model: class 11 exists in the model but the digits data has no image of it."""
    unet = UNet2DModel(
        sample_size=16,
        in_channels=1,
        out_channels=1,
        block_out_channels=(8, 8),
        norm_num_groups=4,
        down_block_types=("DownBlock2D",) * 2,
        up_block_types=("UpBlock2D",) * 2,
        num_class_embeds=13,
    )
    from diffusers import DDPMScheduler

    base = save_class_model(
        ClassDiffusionModel(unet, DDPMScheduler(), [str(c) for c in range(12)], {"digits_split_seed": 0}),
        tmp_path / "twelve",
    )
    before = folder_hash(base)
    code, err = run_cli(capsys, str(write_config(tmp_path, model=str(base), forget_classes=[11])))
    assert_refused(code, err, "forget set is empty", tmp_path)
    assert folder_hash(base) == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"forget_clases": [3]}, "forget_clases: Extra inputs are not permitted"),
        ({"unlearning": {"lr": -1}}, "unlearning.lr: Input should be greater than 0"),
        (
            {"unlearning": {"lambda": {"mode": "sometimes"}}},
            "unlearning.lambda.mode: Input should be 'adaptive' or 'constant'",
        ),
        ({"forget_classes": [3, 3]}, "forget_classes lists a class twice"),
    ],
    ids=["typo", "negative-lr", "bad-lambda-mode", "duplicate-class"],
)
def test_config_errors_name_the_field(capsys, tmp_path: Path, fields: dict, message: str) -> None:
    code, err = run_cli(capsys, str(write_config(tmp_path, **fields)))
    assert_refused(code, err, message, tmp_path)


def test_malformed_yaml(capsys, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("forget_classes: [3\noutput_dir: x\n")
    code, err = run_cli(capsys, str(path))
    assert_refused(code, err, "is not valid YAML", tmp_path)


def test_non_finite_loss_stops_without_a_model(capsys, model_copy: Path, tmp_path: Path) -> None:
    weights = model_copy / "unet" / UNET_WEIGHTS
    state = load_file(weights)
    state["conv_out.bias"] = torch.full_like(state["conv_out.bias"], float("nan"))
    save_file(state, weights)
    before = folder_hash(model_copy)
    code, err = run_cli(capsys, str(write_config(tmp_path, model=str(model_copy))))
    assert_refused(code, err, "unlearning diverged at step 0: non-finite L_r=nan", tmp_path)
    assert folder_hash(model_copy) == before


def test_real_process_exit_code(tmp_path: Path) -> None:
    config = write_config(tmp_path, forget_clases=[3])
    proc = subprocess.run(
        [sys.executable, "-m", "erasediff.cli", "unlearn", str(config)], capture_output=True, text=True
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and proc.stderr.startswith("error: config")
