"""The model card: the README.md that travels in a promoted diffusers folder, as the Hub and diffusers users expect it
(`huggingface_hub.ModelCard`: library, license, base model, pipeline tag), its request text escaped so a viewer
renders text."""

import html
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from erasediff.reporting.html_report import REPORT_HTML, _fmt

MODEL_CARD = "README.md"
PIPELINE_TAGS = {"concept": "text-to-image", "class": "unconditional-image-generation"}  # the Hub's task names


def inherited_license(card: Path) -> str:
    """The license of the card a folder already carries (the base model's, copied with its files): a derivative
    keeps it. Without one, 'other': the Hub's value for a license this card cannot name."""
    if card.is_file():
        try:
            found = ModelCard.load(card).data.license
        except (ValueError, OSError):  # a base card without valid front matter names no license
            found = None
        if found:
            return str(found)
    return "other"


def _text(value: object) -> str:
    """A request's free text as inert Markdown: HTML escaped (Markdown renders raw HTML), on one line, no table breaks,
    no code spans or emphasis of its own."""
    text = html.escape(" ".join(str(value).split()), quote=True)
    return (
        text.replace("|", "&#124;")
        .replace("`", "&#96;")
        .replace("*", "&#42;")
        .replace("_", "&#95;")
        .replace("[", "&#91;")
    )


def model_card(
    request: dict,
    base_model_sha256: str,
    gate_report: dict,
    promoted_at: str,
    provenance: dict,
    earlier_erasures: list[dict],
    license: str = "other",
) -> str:
    """The README.md of a promoted diffusers folder: the Hub's metadata, then what was erased, when, by which request
    (and which earlier erasures it keeps in force), and the gates."""
    info, target, registry = request["request"], request["target"], request["registry"]
    kept = "\n".join(
        f"| {_text(e['request_id'])} | {e['version']} | "
        f"{[int(c) for c in e['classes']] if e.get('classes') else _text(e.get('concept'))} |"
        for e in earlier_erasures
    )
    erased = (
        f"classes {target['classes']}"
        if target.get("classes") is not None
        else f"the concept &quot;{_text(target['concept'])}&quot;"
    )
    name, alias, base = _text(registry["model_name"]), _text(registry["alias"]), _text(request["base_model"])
    gates = "\n".join(
        f"| {g['gate']} | {_fmt(g['value'])} | {_fmt(g['threshold'])} | {'pass' if g['passed'] else 'FAIL'} |"
        for g in gate_report["gates"]
    )
    data = ModelCardData(
        library_name="diffusers",
        license=license,
        base_model=_text(request["base_model"]),  # front matter reaches viewers that render it as Markdown
        pipeline_tag=PIPELINE_TAGS["class" if target.get("classes") is not None else "concept"],
        tags=["erasediff", "machine-unlearning", "diffusers"],
        base_model_sha256=base_model_sha256,
        erasure_request=str(info["id"]),
    )
    body = f"""# {name}: {erased} erased

This diffusion model was produced by **EraseDiff** unlearning from the base model {base}
(sha256 `{base_model_sha256}`) and promoted to {name}@{alias} on {promoted_at}.

| erasure request | |
|---|---|
| id | {_text(info["id"])} |
| requester | {_text(info["requester"])} |
| reason | {_text(info["reason"])} |
| legal basis | {_text(info.get("legal_basis") or "")} |
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

{chr(10).join(f"- {k}: {_text(v)}" for k, v in provenance.items())}

The full erasure report (data manifests, Great Expectations results, curves, before/after samples, metric
protocols) is `report/{REPORT_HTML}` next to this model in the registered version's artifacts, and in the
MLflow run that promoted it.
"""
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n{body}"))
