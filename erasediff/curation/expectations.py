"""Great Expectations 1.x suites over the curation manifest (an ephemeral context, no project folder).

One suite per set (size, readability, shape/dtype/value range, label domain, duplicate flood) and one
across both sets (no image, by decoded-content hash, in both). The result is kept whole as JSON; the
failures are also flattened into one line each for the error a user sees.
"""

import logging
from dataclasses import dataclass, field

import pandas as pd

from erasediff.curation.sets import SETS


@dataclass
class SetExpectations:
    min_rows: int
    labels: list[int] | None  # class sets: the allowed labels; concept sets (None): every image needs a caption
    height: int
    width: int
    channels: int
    max_duplicate_fraction: float
    excluded_captions: list[str] = field(default_factory=list)  # the forget set may not be captioned with an anchor


@dataclass
class ValidationReport:
    success: bool
    failures: list[str]
    results: dict = field(repr=False)


def _per_set_suite(gx, name: str, e: SetExpectations):
    x = gx.expectations
    suite = gx.ExpectationSuite(name=f"{name}_set")
    if e.labels is not None:
        content = [
            x.ExpectColumnValuesToNotBeNull(column="label"),
            x.ExpectColumnValuesToBeInSet(column="label", value_set=e.labels),
        ]
    else:
        content = [
            x.ExpectColumnValuesToNotBeNull(column="caption"),
            x.ExpectColumnValueLengthsToBeBetween(column="caption", min_value=1),
        ]
        if e.excluded_captions:
            content.append(x.ExpectColumnValuesToNotBeInSet(column="caption", value_set=e.excluded_captions))
    for expectation in [
        x.ExpectTableRowCountToBeBetween(min_value=e.min_rows),
        x.ExpectColumnValuesToBeInSet(column="inside_folder", value_set=[True]),  # no absolute path, `..` or symlink
        x.ExpectColumnValuesToBeInSet(column="readable", value_set=[True]),
        *content,
        x.ExpectColumnValuesToBeInSet(column="height", value_set=[e.height]),
        x.ExpectColumnValuesToBeInSet(column="width", value_set=[e.width]),
        x.ExpectColumnValuesToBeInSet(column="channels", value_set=[e.channels]),
        x.ExpectColumnValuesToBeInSet(column="dtype", value_set=["uint8"]),
        x.ExpectColumnValuesToBeBetween(column="pixel_range", min_value=1, max_value=255),
        x.ExpectColumnProportionOfUniqueValuesToBeBetween(column="sha256", min_value=1 - e.max_duplicate_fraction),
    ]:
        suite.add_expectation(expectation)
    return suite


def _overlap_suite(gx):
    suite = gx.ExpectationSuite(name="forget_retain_disjoint")
    suite.add_expectation(gx.expectations.ExpectColumnValuesToBeUnique(column="sha256"))
    return suite


def _describe(suite: str, result) -> str:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    found = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed = f"error: {str(result.exception_info.get('exception_message')).splitlines()[0]}"
    elif "unexpected_count" in found and found.get("unexpected_count") is not None:
        rows = found.get("partial_unexpected_index_list") or []
        examples = (
            [f"{r['set']}/{r['file']}" for r in rows[:3]]
            if rows and isinstance(rows[0], dict)
            else [str(v)[:16] for v in (found.get("partial_unexpected_list") or [])[:3]]
        )
        observed = f"{found['unexpected_count']} unexpected, e.g. {examples}"
    else:
        observed = f"observed {found.get('observed_value')}"
    return f"{suite}: {config.type}({', '.join(f'{k}={v}' for k, v in kwargs.items())}): {observed}"


def validate_sets(manifest: pd.DataFrame, expectations: dict[str, SetExpectations]) -> ValidationReport:
    """Run every suite; success only when all expectations of all suites pass."""
    logging.getLogger("great_expectations").setLevel(
        logging.WARNING
    )  # its DEBUG chatter at import floods pipeline logs
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("curation")
    frames = {name: manifest[manifest["set"] == name].reset_index(drop=True) for name in SETS}
    suites = {name: _per_set_suite(gx, name, expectations[name]) for name in SETS}
    frames["overlap"] = manifest.drop_duplicates(["set", "sha256"]).reset_index(drop=True)
    suites["overlap"] = _overlap_suite(gx)

    failures, results, success = [], {}, True
    for key, frame in frames.items():
        batch = source.add_dataframe_asset(key).add_batch_definition_whole_dataframe("all")
        suite = context.suites.add(suites[key])
        result = context.validation_definitions.add(gx.ValidationDefinition(name=key, data=batch, suite=suite)).run(
            batch_parameters={"dataframe": frame},
            result_format={"result_format": "SUMMARY", "unexpected_index_column_names": ["set", "file"]},
        )
        results[suite.name] = result.to_json_dict()
        success &= bool(result.success)
        failures += [_describe(suite.name, r) for r in result.results if not r.success]
    return ValidationReport(success, failures, results)


def request_expectations(
    forget_classes: list[int],
    num_classes: int,
    size: int,
    channels: int,
    min_forget: int,
    min_retain: int,
    max_duplicate_fraction: float,
    retain_excluded: list[int] | None = None,
) -> dict[str, SetExpectations]:
    """Forget labels must be the forgotten classes, retain labels any other class not in `retain_excluded`
    (classes erased by earlier requests); shapes must fit the model."""
    retained = [c for c in range(num_classes) if c not in forget_classes and c not in (retain_excluded or [])]
    return {
        "forget": SetExpectations(min_forget, list(forget_classes), size, size, channels, max_duplicate_fraction),
        "retain": SetExpectations(min_retain, retained, size, size, channels, max_duplicate_fraction),
    }


def concept_expectations(
    size: int, channels: int, anchors: list[str], min_forget: int, min_retain: int, max_duplicate_fraction: float
) -> dict[str, SetExpectations]:
    """Captioned RGB images at the pipeline's resolution; no forget image captioned with an anchor prompt."""
    return {
        "forget": SetExpectations(min_forget, None, size, size, channels, max_duplicate_fraction, list(anchors)),
        "retain": SetExpectations(min_retain, None, size, size, channels, max_duplicate_fraction),
    }
