"""The erasure request: the shipped example validates, and every mistake names its field."""

from pathlib import Path

import pytest

from erasediff.errors import ErasediffError
from erasediff.request import ErasureRequest, load_request

EXAMPLE = Path(__file__).parents[1] / "configs" / "request_digits_forget_3.yaml"


def test_example_request_validates() -> None:
    request = load_request(EXAMPLE)
    assert request.target.classes == [3] and request.registry.alias == "champion"
    assert request.eval_config().forget_classes == [3]
    assert ErasureRequest.model_validate(request.as_params()) == request


@pytest.mark.parametrize(("edit", "field"), [
    ("request:\n  id: 'bad id!'\n  requester: a\n  reason: b\ntarget: {classes: [3]}\n", "request.id"),
    ("request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3, 3]}\n", "target"),
    ("request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\ngates: {forgotten_acuracy_max: 0.1}\n", "gates.forgotten_acuracy_max"),
    ("request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\ngates: {forgotten_accuracy_max: null, retained_accuracy_drop_max: null, fid_increase_max: null}\n", "gates"),
    ("request: {id: r1, requester: a, reason: b}\ntarget: {classes: [3]}\nregistry: {alias: '1x'}\n", "registry.alias"),
    ("request: {id: r1, reason: b}\ntarget: {classes: [3]}\n", "request.requester"),
])
def test_bad_request_names_the_field(tmp_path: Path, edit: str, field: str) -> None:
    path = tmp_path / "request.yaml"
    path.write_text(edit)
    with pytest.raises(ErasediffError, match=field.replace(".", r"\.")) as info:
        load_request(path)
    assert "\n" not in str(info.value)
