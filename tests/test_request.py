"""The erasure request: the shipped example validates, and every mistake names its field."""

from pathlib import Path

import pytest
from conftest import merge

from erasediff.request.schema import ErasureRequest, load_request
from erasediff.util.errors import ErasediffError

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"


def test_example_request_validates() -> None:
    request = load_request(EXAMPLE)
    assert request.target.classes == [3] and request.registry.alias == "champion"
    assert request.eval_config().forget_classes == [3]
    assert ErasureRequest.model_validate(request.as_params()) == request


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        ("request:\n  id: 'bad id!'\n  requester: a\n  reason: b\ntarget: {classes: [3]}\n", "request.id"),
        ("request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3, 3]}\n", "target"),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\ngates: {forgotten_acuracy_max: 0.1}\n",
            "gates.forgotten_acuracy_max",
        ),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\n"
            "gates: {forgotten_accuracy_max: null, retained_accuracy_drop_max: null, fid_increase_max: null}\n",
            "gates",
        ),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\nregistry: {alias: '1x'}\n",
            "registry.alias",
        ),
        ("request: {id: r1, reason: b}\ntarget: {classes: [3]}\n", "request.requester"),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\ngates: {attack_success_max: 0.2}\n",
            "attack_success_max",
        ),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\ngates: {neighbour_accuracy_drop_max: "
            "0.05}\n",
            "neighbour_accuracy_drop_max",
        ),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\nevaluation: {neighbours: [3, 5]}\n",
            "neighbours",
        ),
        (
            "request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\nevaluation: {attacks: {attacks: "
            "[telepathy]}}\n",
            "evaluation.attacks.attacks",
        ),
    ],
)
def test_bad_request_names_the_field(tmp_path: Path, edit: str, field: str) -> None:
    path = tmp_path / "request.yaml"
    path.write_text(edit)
    with pytest.raises(ErasediffError, match=field.replace(".", r"\.")) as info:
        load_request(path)
    assert "\n" not in str(info.value)


def test_a_request_without_a_utility_gate_is_refused() -> None:
    """Forgetting alone proves nothing: a model that collapsed on every class forgets too."""
    from pydantic import ValidationError

    raw = {
        "request": {"id": "r1", "requester": "a", "reason": "b"},
        "target": {"classes": [3]},
        "gates": {"forgotten_accuracy_max": 0.2, "retained_accuracy_drop_max": None, "fid_increase_max": None},
    }
    with pytest.raises(ValidationError, match="no utility gate"):
        ErasureRequest.model_validate(raw)
    for utility in ("retained_accuracy_drop_max", "fid_increase_max"):
        ErasureRequest.model_validate(merge(raw, {"gates": {utility: 0.1}}))


def test_concept_request_without_a_forget_side_gate_is_refused() -> None:
    """Utility gates alone (CLIP score) would promote an erasure nothing proved, and later requests could not re-check
    it."""
    from pydantic import ValidationError

    raw = {
        "request": {"id": "r1", "requester": "a", "reason": "b"},
        "target": {"concept": "a style", "prompts": ["x"], "anchors": ["y"]},
        "base_model": "text-digits",
        "evaluation": {"text_to_image": {"captions": {"prompts": "c.csv", "clip_model": "clip"}}},
        "gates": {
            "clip_score_drop_max": 1.0,
            "forgotten_accuracy_max": None,
            "retained_accuracy_drop_max": None,
            "fid_increase_max": None,
        },
    }
    with pytest.raises(ValidationError, match="needs a forget-side gate"):
        ErasureRequest.model_validate(raw)
    raw["evaluation"]["text_to_image"]["nudity"] = {"prompts": "i2p.csv"}
    ErasureRequest.model_validate(merge(raw, {"gates": {"nudity_rate_max": 0.1}}))


def test_the_drift_gate_needs_text_to_image_class_prompts_with_a_reference() -> None:
    """Drift is measured on class prompts against the original's samples; a class request has no such measure."""
    from pydantic import ValidationError

    raw = {
        "request": {"id": "r1", "requester": "a", "reason": "b"},
        "target": {"classes": [3]},
        "gates": {"kid_drift_max": 3.0},
    }
    with pytest.raises(ValidationError, match="kid_drift_max are checked but the evaluation does not measure them"):
        ErasureRequest.model_validate(raw)
    seven = load_request(Path(__file__).parents[1] / "configs" / "request_text_digits_forget_seven.yaml")
    assert seven.gates.kid_drift_max is not None and "drift" in seven.measured_metrics()
    assert seven.gates.sharpness_change_max is not None and "sharpness" in seven.measured_metrics()
