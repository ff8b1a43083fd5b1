"""The model card: the README.md that travels in a promoted diffusers folder (escaped, so a viewer renders text)."""

from erasediff.reporting.report import REPORT_HTML, _fmt

MODEL_CARD = "README.md"


def model_card(request: dict, base_model_sha256: str, gate_report: dict, promoted_at: str, provenance: dict,
               earlier_erasures: list[dict]) -> str:
    """The README.md of a promoted diffusers folder: what was erased, when, by which request (and which earlier
    erasures it keeps in force), and the gates."""
    info, target = request["request"], request["target"]
    kept = "\n".join(f"| {e['request_id']} | {e['version']} | {e.get('classes') or e.get('concept')} |" for e in earlier_erasures)
    erased = f"classes {target['classes']}" if target.get("classes") is not None else f"the concept \"{target['concept']}\""
    gates = "\n".join(f"| {g['gate']} | {_fmt(g['value'])} | {_fmt(g['threshold'])} | {'pass' if g['passed'] else 'FAIL'} |"
                      for g in gate_report["gates"])
    return f"""---
tags: [erasediff, machine-unlearning, diffusers]
base_model_sha256: {base_model_sha256}
erasure_request: {info['id']}
---
# {request['registry']['model_name']}: {erased} erased

This diffusion model was produced by **EraseDiff** unlearning from the base model `{request['base_model']}`
(sha256 `{base_model_sha256}`) and promoted to `{request['registry']['model_name']}@{request['registry']['alias']}` on {promoted_at}.

| erasure request | |
|---|---|
| id | {info['id']} |
| requester | {info['requester']} |
| reason | {info['reason']} |
| legal basis | {info.get('legal_basis') or ''} |
| erased | {erased} |

## Earlier erasures kept in force (re-measured on this version; their gates are in the table below)

| request | version | erased |
|---|---:|---|
{kept or "| none | | |"}

## Gate results

| gate | value | threshold | verdict |
|---|---:|---:|---|
{gates}

## Provenance

{chr(10).join(f"- {k}: `{v}`" for k, v in provenance.items())}

The full erasure report (data manifests, Great Expectations results, curves, before/after samples, metric
protocols) is `report/{REPORT_HTML}` next to this model in the registered version's artifacts, and in the
MLflow run that promoted it.
"""
