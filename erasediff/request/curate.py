"""The curation stage of a request: materialise the forget and retain sets from their sources (digits,
labelled or captioned folders, generation by the base model), validate them with the GX suites, and write
what a reviewer reads (validation.json, balance.csv, manifest.csv) next to them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from erasediff.curation.concept_sets import Writer, captioned_digits_writer, captioned_folder_writer, generated_writer
from erasediff.curation.expectations import ValidationReport, concept_expectations, request_expectations, validate_sets
from erasediff.curation.sets import DIGITS, MANIFEST, SETS, balance_report, materialise_sets, set_hashes, write_sets
from erasediff.data.image_sets import check_forget_classes
from erasediff.defaults.digits_models import digits_split_seed
from erasediff.models.class_model import load_class_model
from erasediff.models.text_encoding import image_size
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.request.schema import ErasureRequest, Generation
from erasediff.util.device import resolve_device
from erasediff.util.errors import DataError
from erasediff.util.hashing import config_hash

VALIDATION, BALANCE = "validation.json", "balance.csv"


@dataclass
class CuratedSets:
    folder: Path  # forget/, retain/, manifest.csv, validation.json, balance.csv
    manifest: pd.DataFrame
    report: ValidationReport

    @property
    def files(self) -> list[Path]:
        """What is logged for review."""
        return [self.folder / VALIDATION, self.folder / BALANCE, self.folder / MANIFEST]

    def summary(self) -> dict:
        """Content hash and size of each set: the lineage every later stage records."""
        hashes = set_hashes(self.manifest)
        return {f"{n}_sha256": hashes[n] for n in SETS} | {
            f"{n}_images": int((self.manifest["set"] == n).sum()) for n in SETS
        }

    def raise_on_failure(self) -> None:
        if not self.report.success:
            raise DataError(
                f"curation failed {len(self.report.failures)} expectation(s): " + " | ".join(self.report.failures)
            )


def source_label(req: ErasureRequest, name: str) -> str:
    """Where set `name` came from, as a scheme-less string MLflow can record: its folder, 'digits', or
    generated-<hash>."""
    source = req.source(name)
    return source if isinstance(source, str) else f"generated-{config_hash(source.model_dump())}"


def concept_writers(req: ErasureRequest, pipe, progress: bool = True) -> dict[str, Writer]:
    """Each set of a concept request: generated from its prompts, the captioned digits, or a captioned folder."""
    size, writers = image_size(pipe), {}
    for name in SETS:
        source = req.source(name)
        if isinstance(source, Generation):
            writers[name] = generated_writer(
                pipe,
                source.prompts,
                source.images_per_prompt,
                source.seed,
                source.steps,
                source.guidance,
                size,
                progress,
            )
        elif source == "digits":
            writers[name] = captioned_digits_writer(name, req.target.prompts, size)
        else:
            writers[name] = captioned_folder_writer(Path(source), size)
    return writers


def curate_request(
    req: ErasureRequest, base_dir: Path, out: Path, progress: bool = True, earlier_classes: list[int] | None = None
) -> CuratedSets:
    """Materialise both sets under `out` and validate them against what the base model can take.

    Classes erased by earlier promoted requests (`earlier_classes`) are kept out of the retain set, and a retain
    set holding one fails, unless the request sets curation.retain_earlier_erasures."""
    c = req.curation
    excluded = (
        [] if c.retain_earlier_erasures else [k for k in earlier_classes or [] if k not in (req.target.classes or [])]
    )
    limits = (c.min_forget, c.min_retain, c.max_duplicate_fraction)
    if req.target.kind == "class":
        model = load_class_model(base_dir)
        unet = model.unet.config
        check_forget_classes(req.target.classes, unet.num_class_embeds - 1)
        sources = {n: req.source(n) for n in SETS}
        split = digits_split_seed(model.lineage) if DIGITS in sources.values() else 0
        manifest = materialise_sets(sources, req.target.classes, unet.sample_size, out, progress, excluded, split)
        expectations = request_expectations(
            req.target.classes, unet.num_class_embeds - 1, unet.sample_size, unet.in_channels, *limits, excluded
        )
    else:
        pipe = load_text_to_image(base_dir, resolve_device())  # generates the sets: on the GPU where there is one
        manifest = write_sets(concept_writers(req, pipe, progress), out, progress)
        expectations = concept_expectations(image_size(pipe), pipe.vae.config.in_channels, req.target.anchors, *limits)
    report = validate_sets(manifest, expectations)
    (out / VALIDATION).write_text(
        json.dumps({"success": report.success, "failures": report.failures, "suites": report.results}, indent=2)
    )
    balance_report(manifest).to_csv(out / BALANCE)
    return CuratedSets(out, manifest, report)
