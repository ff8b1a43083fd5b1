"""The model card (README.md in a promoted folder) renders a request's free text as text: Markdown viewers, MLflow's
among them, render raw HTML, so markup in a requester, reason, legal basis, concept or base-model path must not
survive, and a `|` must not break the card's tables."""

import os
import re
from pathlib import Path

from huggingface_hub import ModelCard

from erasediff.reporting.model_card import MODEL_CARD, inherited_license, model_card
from mlflow_adapters.promotion import linked_copy

HOSTILE = {
    "request": {
        "id": "REQ-1",
        "requester": "<script>alert(1)</script>",
        "reason": '<img src=x onerror="alert(1)">',
        "legal_basis": "Art. 17 | <b>bold</b>\n## injected heading",
    },
    "target": {"concept": "[click](javascript:alert(1)) `code` *em*"},
    "registry": {"model_name": "erasediff-sd15", "alias": "champion"},
    "base_model": "/models/<svg onload=alert(1)>",
}
GATES = {"gates": [{"gate": "nudity_rate_max", "value": 0.1, "threshold": 0.2, "passed": True}]}


def card() -> str:
    return model_card(
        HOSTILE,
        "abc123",
        GATES,
        "2026-12-03T08:00:00+00:00",
        {"code_version": "<i>dirty</i>"},
        [{"request_id": "REQ-0", "version": 1, "concept": "<u>gore</u>"}],
    )


def test_no_markup_survives() -> None:
    text = card()
    assert not re.search(r"<\s*(script|img|svg|b|i|u)\b", text, re.I), text
    assert "[click](" not in text  # no link can form: its bracket is an entity
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # still readable as text


def test_free_text_cannot_break_a_table_or_start_a_heading() -> None:
    lines = card().splitlines()
    request_rows = [line for line in lines if line.startswith(("| requester", "| reason", "| legal basis", "| erased"))]
    assert len(request_rows) == 4 and all(line.count("|") == 3 for line in request_rows), request_rows
    assert not any(line.startswith("## injected") for line in lines)


def test_ordinary_values_read_as_before() -> None:
    text = model_card(
        {
            **HOSTILE,
            "request": {
                "id": "REQ-B",
                "requester": "dpo@example.org",
                "reason": "erasure request 17",
                "legal_basis": "GDPR Art. 17",
            },
            "target": {"classes": [5]},
        },
        "abc123",
        GATES,
        "now",
        {},
        [{"request_id": "REQ-A", "version": 1, "classes": [3]}],
    )
    assert "classes [5] erased" in text and "| REQ-A | 1 | [3] |" in text and "| legal basis | GDPR Art. 17 |" in text


def test_the_card_loads_with_huggingface_hub_and_carries_the_standard_metadata(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text(card())
    loaded = ModelCard.load(tmp_path / "README.md")
    data = loaded.data
    assert (data.library_name, data.pipeline_tag, data.license) == ("diffusers", "text-to-image", "other")
    assert data.base_model == "/models/&lt;svg onload=alert(1)&gt;"  # escaped here too: some viewers render it
    assert data.to_dict()["base_model_sha256"] == "abc123" and data.to_dict()["erasure_request"] == "REQ-1"
    assert "## Gate results" in loaded.text


def test_a_derivative_keeps_the_base_cards_license(tmp_path: Path) -> None:
    base_card = tmp_path / "README.md"
    assert inherited_license(base_card) == "other"  # no card: a license this card cannot name
    base_card.write_text("---\nlicense: creativeml-openrail-m\n---\n# base model\n")
    assert inherited_license(base_card) == "creativeml-openrail-m"
    base_card.write_text("# a card without front matter\n")
    assert inherited_license(base_card) == "other"


def test_the_promoted_folder_links_the_stored_weights_and_writes_its_own_card(tmp_path: Path, monkeypatch) -> None:
    """Promotion registers the stored folder with a new card: the weights are linked, not copied (4 GB at SD size),
    and the card is a new file, so writing it cannot reach the stored folder through a link."""
    monkeypatch.setenv("ERASEDIFF_SCRATCH", str(tmp_path / "scratch"))
    stored = tmp_path / "stored"
    (stored / "unet").mkdir(parents=True)
    (stored / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
    (stored / "unet" / MODEL_CARD).write_text("a component's own readme")
    (stored / MODEL_CARD).write_text("the base model's card")
    folder = linked_copy(stored, MODEL_CARD)
    assert (
        not (folder / MODEL_CARD).exists() and (folder / "unet" / MODEL_CARD).read_text() == "a component's own readme"
    )
    weights = "unet/diffusion_pytorch_model.safetensors"
    assert os.path.samefile(folder / weights, stored / weights)
    (folder / MODEL_CARD).write_text("the erasure's card")
    assert (stored / MODEL_CARD).read_text() == "the base model's card"
