"""The report stage of a request: what happened, gathered from every stage's output into the erasure report
(HTML and JSON twin) and the run's verdict."""

import json
from pathlib import Path

from erasediff.reporting.html_report import write_report
from erasediff.request.curate import VALIDATION
from erasediff.request.evaluate import EARLIER
from erasediff.request.schema import ErasureRequest
from erasediff.request.unlearn_curated import CURVES


def outcome(promotion: dict) -> dict:
    """The verdict line and where the model went (or that it went nowhere)."""
    if promotion["status"] == "gated-out":
        failed = ", ".join(promotion["failed_gates"]) or "none configured"
        return {
            "promoted": False,
            "summary": f"NOT promoted: gate(s) failed: {failed}",
            "model_name": promotion["model_name"],
        }
    if promotion.get("awaiting_approval"):
        summary = (
            f"passed every gate: registered as {promotion['model_name']} version {promotion['version']} "
            f"(@{promotion['alias']}), awaiting a reviewer's approval"
        )
    else:
        summary = f"promoted as {promotion['model_name']} version {promotion['version']}" + (
            f" (@{promotion['alias']})" if "alias" in promotion else " (earlier run)"
        )
    if promotion.get("registered_by", "").startswith("unauthenticated"):
        summary += " (the tracking store does not authenticate its users: recorded as unauthenticated)"
    return {
        "promoted": True,
        "summary": summary,
        "model_name": promotion["model_name"],
        "version": promotion["version"],
        "alias": promotion.get("alias"),
        "model_uri": promotion.get("model_uri"),
    }


def run_description(request: ErasureRequest, outcome: dict) -> str:
    """One paragraph for the MLflow run's and the registered version's description: request, target, outcome."""
    r = request.request
    return (
        f"Erasure request {r.id} by {r.requester}: erase {request.target.erased} from {request.base_model} "
        f"({r.reason}). Outcome: {outcome['summary']}."
    )


def write_request_report(
    request: ErasureRequest,
    base_model_sha256: str,
    curated_sets: Path,
    curation_summary: dict,
    unlearned: Path,
    evaluation: dict,
    evaluation_files: Path,
    gate_report: dict,
    promotion: dict,
    provenance: dict,
    out: Path,
) -> tuple[dict, list[Path]]:
    """(facts, [html, json]) written under `out`; `provenance` names the code version and the runs that produced it."""
    facts = {
        "request": request.as_params(),
        "base_model_sha256": base_model_sha256,
        "curation": {"summary": curation_summary, "validation": json.loads((curated_sets / VALIDATION).read_text())},
        "earlier_erasures": evaluation.get("earlier_erasures", []),
        "earlier_checks": evaluation.get("earlier_checks", []),
        "evaluation": {
            "metrics": {n: evaluation["models"][n]["metrics"] for n in ("original", "unlearned")},
            "delta": evaluation["delta"],
            "protocol": evaluation["protocol"],
            "attacks": evaluation.get("attacks") or {},
        },
        "gates": gate_report,
        "outcome": outcome(promotion),
        "provenance": provenance,
    }
    grids = sorted((evaluation_files / "grids").glob("*.png"))
    images = {
        "Before / after samples (same seeds)": [g for g in grids if g.stem.startswith("all")] or grids[:1],
        "Attacked samples (rows: original, gold standard, candidate)": [
            g for g in grids if g.stem.startswith("attack-")
        ],
        "Earlier concept erasures re-checked (base / this version)": sorted(
            (evaluation_files / EARLIER).glob("*/grids/*.png")
        ),
        "Unlearning curves (loss, lambda_t, cosines)": [unlearned / CURVES],
    }  # in the order a reviewer reads them
    return facts, list(write_report(facts, images, out))
