"""Where evaluation runs: the GPU when the node has one, the CPU on request, and never a silent CPU run for `cuda`.

This host has no GPU, so what these tests show is the choice and its wiring; that the attacks then run on a GPU
(every tensor they draw follows the pipeline's device) is checked by `benchmarks/sd_scale.py --device cuda`."""

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from erasediff.comparison.eval_config import ClassPromptSettings, PromptEvalConfig
from erasediff.comparison.text_to_image import evaluate_prompt_pair
from erasediff.util.device import resolve_device
from erasediff.util.errors import ErasediffError

CLASSES = ClassPromptSettings(prompts=Path("erasediff/assets/prompts/digit_classes.csv"), forget_classes=[7])


def test_auto_is_the_gpu_only_where_the_node_has_one() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for nodes without a GPU")
def test_cuda_without_a_gpu_stops_the_evaluation_before_any_model_loads(tmp_path: Path) -> None:
    config = PromptEvalConfig(classes=CLASSES, device="cuda")
    with pytest.raises(ErasediffError, match="torch sees no GPU"):
        evaluate_prompt_pair(tmp_path / "no-original", tmp_path / "no-unlearned", config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_the_setting_is_one_of_auto_cpu_cuda() -> None:
    assert PromptEvalConfig(classes=CLASSES).device == "auto"
    with pytest.raises(ValidationError, match="device"):
        PromptEvalConfig(classes=CLASSES, device="gpu")
