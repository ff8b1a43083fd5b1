"""The report reads top down for a reviewer: verdict and what was erased, gates, samples, attacks, then collapsed
details."""

from pathlib import Path

import numpy as np
from PIL import Image

from erasediff.reporting.html_report import render_html

FACTS = {
    "request": {
        "request": {
            "id": "REQ-1",
            "requester": "dpo@example.org",
            "reason": "deletion request",
            "legal_basis": "GDPR Art. 17",
        },
        "target": {"classes": [3]},
        "base_model": "digits",
        "registry": {"model_name": "m", "alias": "champion"},
        "unlearning": {"method": "erasediff", "steps": 100},
    },
    "base_model_sha256": "ab" * 32,
    "curation": {"summary": {"forget_n": 10}, "validation": {"success": True, "suites": {}}},
    "earlier_erasures": [],
    "evaluation": {
        "metrics": {"original": {"forgotten_accuracy": 0.99}, "unlearned": {"forgotten_accuracy": 0.02}},
        "delta": {"forgotten_accuracy": -0.97},
        "protocol": {"forgotten_accuracy": {"samples": 100}},
        "attacks": {"inversion": {"original": 0.9, "gold": 0.1, "unlearned": 0.12, "margin_over_gold": 0.02}},
    },
    "gates": {
        "passed": False,
        "gates": [
            {"gate": "forgotten_accuracy_max", "measures": "x", "value": 0.02, "threshold": 0.2, "passed": True},
            {
                "gate": "attack_margin_over_gold_max.inversion",
                "measures": "y",
                "value": 0.3,
                "threshold": 0.1,
                "passed": False,
            },
        ],
    },
    "outcome": {
        "promoted": False,
        "summary": "NOT promoted: gate(s) failed: attack_margin_over_gold_max.inversion",
        "model_name": "m",
    },
    "provenance": {"code_version": "abc"},
}


def test_reviewer_order_and_collapsed_details(tmp_path: Path) -> None:
    grid = tmp_path / "all.png"
    Image.fromarray(np.zeros((4, 4), dtype=np.uint8)).save(grid)
    page = render_html(FACTS, {"Before / after samples (same seeds)": [grid], "Unlearning curves": [grid]})
    order = [
        "NOT promoted",
        "classes [3]",
        "1 of 2 passed; failed: attack_margin_over_gold_max.inversion",
        "<h2>Gates</h2>",
        "Before / after samples",
        "Unlearning curves",
        "Recovery attacks",
        "<h2>Details</h2>",
    ]
    positions = [page.index(marker) for marker in order]
    assert positions == sorted(positions), dict(zip(order, positions))
    details = page[page.index("<h2>Details</h2>") :]
    assert (
        details.count("<details>") == 7 and "&quot;steps&quot;: 100" in details
    )  # settings and protocols only in the collapsed part
    assert page.index("&quot;steps&quot;: 100") > page.index("<h2>Details</h2>")
    assert "@media print" in page and "<script" not in page
