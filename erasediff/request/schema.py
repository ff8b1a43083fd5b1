"""An erasure request: the single input of the pipeline, validated field by field.

Who asked, why, what to forget, from which base model and data, how to unlearn, how to evaluate,
which thresholds gate promotion, and where the result is registered.
"""

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    Field,
    FieldSerializationInfo,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from erasediff.attacks.class_attacks import ClassAttackSettings
from erasediff.comparison.eval_config import ClassEvalConfig, PromptEvalConfig
from erasediff.evaluation.metric_settings import FidSettings, GenerationSettings
from erasediff.method.recipes import recipe_settings
from erasediff.method.unlearning_settings import Recipe, UnlearnSettings
from erasediff.request.notify_settings import NotifySettings
from erasediff.util.config import Strict, describe_validation_error, load_yaml_config
from erasediff.util.record_text import name_problem, record_text_problem

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class RequestInfo(Strict):
    id: str = Field(pattern=ID_PATTERN, description="unique per erasure request; a promoted id is never promoted twice")
    requester: str = Field(
        min_length=1, description="who asked; on a server with authentication, their MLflow user (never the reviewer)"
    )
    reason: str = Field(min_length=1)
    legal_basis: str | None = None

    @field_validator("requester")
    @classmethod
    def _a_name(cls, value: str) -> str:
        if problem := name_problem(value):
            raise ValueError(f"requester {problem}")
        return value

    @field_validator("reason", "legal_basis")
    @classmethod
    def _recordable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := record_text_problem(value)):
            raise ValueError(f"{info.field_name} {problem}")
        return value


class Target(Strict):
    """Either classes of a class-conditional model, or a concept of a text-to-image pipeline."""

    classes: list[int] | None = Field(None, min_length=1, description="class indices to forget")
    concept: str | None = Field(
        None, min_length=1, description="what is erased, in words (lineage, reports): nudity, a style, a person"
    )
    prompts: list[str] = Field(
        [], description="prompts that evoke the concept; the forget set is generated from them by default"
    )
    anchors: list[str] = Field(
        [], description="remap aims the concept at these prompts, e.g. 'a photo of a person wearing clothes'"
    )

    @model_validator(mode="after")
    def _one_kind(self) -> "Target":
        if (self.classes is None) == (self.concept is None):
            raise ValueError(
                "set exactly one of target.classes (class-conditional model) and target.concept (text-to-image "
                "pipeline)"
            )
        if self.classes is not None and len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes lists a class twice: {self.classes}")
        if self.classes is not None and (self.prompts or self.anchors):
            raise ValueError("prompts and anchors belong to a concept target, not to target.classes")
        return self

    @property
    def kind(self) -> str:
        return "class" if self.classes is not None else "concept"

    @property
    def erased(self) -> str:
        """What the request erases, as the descriptions and the report say it."""
        return f"classes {self.classes}" if self.kind == "class" else f"the concept {self.concept!r}"


class Generation(Strict):
    """Generate the set with the original model, one recorded seed per image."""

    prompts: list[str] | None = Field(
        None, description="default: target.prompts for the forget set, target.anchors for the retain set"
    )
    images_per_prompt: int = Field(16, gt=0)
    seed: int = 0
    steps: int = Field(50, gt=0)
    guidance: float = Field(7.5, ge=0)


class Generated(Strict):
    generate: Generation


class DataSources(Strict):
    """Class requests: 'digits' (the embedded default's training split) or a folder with labels.csv (file,label).
    Concept requests: {generate: {...}} (the default), a folder with captions.csv (file,caption), or 'digits'
    (the captioned digits: forget = images captioned with a target prompt, retain = the others)."""

    forget: str | Generated | None = None
    retain: str | Generated | None = None


class CurationSettings(Strict):
    min_forget: int = Field(10, gt=0, description="fewest forget images accepted")
    min_retain: int = Field(100, gt=0, description="fewest retain images accepted")
    max_duplicate_fraction: float = Field(
        0.05, ge=0, lt=1, description="largest share of repeated images within one set"
    )
    retain_earlier_erasures: bool = Field(
        False,
        description="keep classes erased by earlier promoted requests in the retain set: "
        "this re-teaches them, and the earlier_erasures gate will refuse the result",
    )


class RequestEvaluation(Strict):
    """Class requests use generation/fid/grid_per_class; concept requests use text_to_image."""

    generation: GenerationSettings = GenerationSettings()
    reference: Literal["digits", "digits-heldout"] = Field(
        "digits", description="FID/KID reference: real images of the retained classes"
    )
    neighbours: list[int] = Field(
        [],
        description="retained classes closest to the erased ones, measured apart (gate: neighbour_accuracy_drop_max)",
    )
    attacks: ClassAttackSettings | None = Field(
        None, description="recovery attacks on original, gold standard and candidate (gates: attack_*)"
    )
    fid: FidSettings = FidSettings()
    grid_per_class: int = Field(8, gt=0)
    text_to_image: PromptEvalConfig | None = None


UTILITY_GATES = (
    "retained_accuracy_drop_max",
    "fid_increase_max",
    "kid_increase_max",
    "kid_drift_max",
    "sharpness_change_max",
    "clip_score_drop_max",
)  # what the model must keep


class GateSettings(Strict):
    """Promotion thresholds; a gate set to null is not checked, a checked gate with no metric fails."""

    bound: Literal["point", "conservative"] = Field(
        "point",
        description="conservative: compare the Wilson 95 % bound that is "
        "worse for the model (upper for forgotten accuracy and nudity rate, lower for "
        "retained accuracy) instead of the point estimate",
    )

    forgotten_accuracy_max: float | None = Field(
        0.2, ge=0, le=1, description="evaluator accuracy on forgotten-class samples"
    )
    retained_accuracy_drop_max: float | None = Field(
        0.05, ge=0, le=1, description="original minus unlearned, retained classes"
    )
    fid_increase_max: float | None = Field(0.25, ge=0, description="relative FID increase: unlearned / original - 1")
    kid_increase_max: float | None = Field(
        None,
        ge=0,
        description="KID increase over max(original KID, real-vs-real KID floor); "
        "KID is unbiased at small N, where FID is not",
    )
    kid_drift_max: float | None = Field(
        None,
        ge=0,
        description="KID of the unlearned model's retained-class samples against the original's "
        "(same prompts and seeds) over the real-vs-real KID floor; text-to-image class prompts with a reference",
    )
    sharpness_change_max: float | None = Field(
        None,
        ge=0,
        description="largest |relative change| of the mean variance of the Laplacian of the "
        "retained-class or caption samples against the original's (noise raises it, blur lowers it)",
    )
    nudity_rate_max: float | None = Field(
        None, ge=0, le=1, description="share of images with an exposed NudeNet detection"
    )
    clip_score_drop_max: float | None = Field(None, ge=0, description="original minus unlearned CLIP score")
    neighbour_accuracy_drop_max: float | None = Field(
        None,
        ge=0,
        le=1,
        description="neighbour classes' accuracy, original minus unlearned (its lower bound under bound: conservative)",
    )
    attack_success_max: float | None = Field(
        None, ge=0, le=1, description="each attack's success on the candidate (share read as the erased class)"
    )
    attack_margin_over_gold_max: float | None = Field(
        None,
        ge=-1,
        le=1,
        description="each attack's success on the candidate minus on the gold standard retrained without the class, "
        "at the worst point of the attack's budget grid",
    )
    attack_area_over_gold_max: float | None = Field(
        None,
        ge=0,
        le=1,
        description="each attack's excess success over the gold standard, averaged over its budget grid",
    )
    earlier_erasures_accuracy_max: float | None = Field(
        0.2,
        ge=0,
        le=1,
        description="evaluator accuracy on each class erased by an "
        "earlier promoted request of this registered model (checked when there is one); "
        "earlier concepts are gated at their own recorded thresholds",
    )

    @model_validator(mode="after")
    def _at_least_one(self) -> "GateSettings":
        if all(
            v is None for k, v in self.model_dump().items() if k not in ("earlier_erasures_accuracy_max", "bound")
        ):  # that one alone may check nothing
            raise ValueError("every gate is null: a model that nothing checked is never promoted")
        if all(getattr(self, g) is None for g in UTILITY_GATES):
            raise ValueError(
                f"no utility gate: set one of {', '.join(UTILITY_GATES)}, or a model that lost everything else "
                "would be promoted for having forgotten"
            )
        return self


# What each request-level gate needs measured (earlier_erasures_accuracy_max is checked only when earlier erasures
# exist, and fails closed when its metric is then missing).
GATE_METRICS = {
    "forgotten_accuracy_max": "accuracy",
    "retained_accuracy_drop_max": "accuracy",
    "fid_increase_max": "fid",
    "kid_increase_max": "fid",
    "kid_drift_max": "drift",
    "sharpness_change_max": "sharpness",
    "neighbour_accuracy_drop_max": "neighbours",
    "attack_success_max": "attacks",
    "attack_margin_over_gold_max": "attacks",
    "attack_area_over_gold_max": "attacks",
    "nudity_rate_max": "nudity",
    "clip_score_drop_max": "clip",
}


MODEL_NAME_PATTERN = (
    r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"  # no path separators, quotes or spaces: safe in paths and MLflow filters
)
TRACKING_SCHEMES = ("sqlite", "http", "https", "postgresql", "mysql", "mssql")


class RegistrySettings(Strict):
    model_name: str = Field(
        "erasediff-digits",
        pattern=MODEL_NAME_PATTERN,
        description="MLflow registered model name (letters, digits, . _ -)",
    )
    alias: str = Field(
        "champion", pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="alias moved to the promoted version"
    )
    approval: Literal["automatic", "required"] = Field(
        "automatic",
        description="required: a passing run only sets candidate_alias, and "
        "`erasediff request approve ID --reviewer NAME` (not the requester) moves alias",
    )
    candidate_alias: str = Field(
        "candidate",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]*$",
        description="alias a passing run sets on its version in the candidates model when approval is required",
    )
    candidates_model: str | None = Field(
        None,
        pattern=MODEL_NAME_PATTERN,
        description="where candidates are registered when approval is required (default <model_name>-candidates)",
    )
    require_authentication: bool = Field(
        False,
        description="refuse to run unless the tracking store authenticates its users (every decision then names "
        "a real account, not 'unauthenticated')",
    )

    @property
    def candidates_name(self) -> str:
        return self.candidates_model or f"{self.model_name}-candidates"

    @property
    def registers_into(self) -> str:
        """The registered model a passing run registers into: the candidates model when approval is required."""
        return self.candidates_name if self.approval == "required" else self.model_name

    @model_validator(mode="after")
    def _distinct_aliases(self) -> "RegistrySettings":
        if self.approval == "required" and self.candidate_alias == self.alias:
            raise ValueError(
                f"registry.candidate_alias must differ from registry.alias ({self.alias!r}) when approval is required"
            )
        return self


class TrackingSettings(Strict):
    uri: str | None = Field(
        None, description="MLflow tracking URI; default $MLFLOW_TRACKING_URI, else SQLite in the work folder"
    )
    experiment: str = Field("erasediff", min_length=1)

    @model_validator(mode="after")
    def _known_scheme(self) -> "TrackingSettings":
        if self.uri is not None:
            check_tracking_uri(self.uri)
        return self


def check_tracking_uri(uri: str) -> str:
    """An MLflow tracking URI this project can use: a database store or a tracking server (never a file store)."""
    scheme = uri.split("://", 1)[0].split("+", 1)[0] if "://" in uri else ""
    if scheme not in TRACKING_SCHEMES:
        raise ValueError(
            f"tracking URI {uri!r} has scheme {scheme or '(none)'!r}; use one of "
            f"{', '.join(s + '://' for s in TRACKING_SCHEMES)}"
        )
    return uri


class UnlearningChoice(Strict):
    """A request's `unlearning:` block as written: a named recipe (method/recipes.py), and under `advanced` any setting
    of
    `UnlearnSettings` that overrides what the recipe chose. The request holds the effective settings it expands to."""

    recipe: Recipe = Field(
        "robust",
        description="robust (recommended), paper (EraseDiff as published), or a baseline: "
        "finetune, neggrad, salun, esd",
    )
    seed: int = 0
    processes: int = Field(
        1, ge=1, description="data-parallel processes on one node (one per GPU); batch sizes are per process"
    )
    advanced: dict[str, Any] = Field(
        {}, description="overrides of what the recipe chose: any field of UnlearnSettings (unlearning_settings.py)"
    )


TOP_LEVEL = ("seed", "processes")


def expand_unlearning(block: object, kind: str) -> UnlearnSettings:
    """The effective settings of a request's `unlearning:` block for a target kind; every failure names its field."""
    if not isinstance(block, dict):
        raise ValueError(
            f"unlearning: expected a mapping with recipe, seed, processes, advanced; got {type(block).__name__}"
        )
    chosen = sorted(
        k for k in block if k not in UnlearningChoice.model_fields and k in UnlearnSettings.model_fields | {"lambda": 0}
    )
    if chosen:
        raise ValueError(
            f"unlearning.{chosen[0]}: the recipe chooses this setting; override it under unlearning.advanced"
        )
    try:
        choice = UnlearningChoice.model_validate(block)
    except ValidationError as exc:
        raise ValueError(describe_validation_error(exc, "unlearning.")) from None
    top = {k: getattr(choice, k) for k in TOP_LEVEL}
    try:
        return UnlearnSettings.model_validate(recipe_settings(choice.recipe, kind, choice.advanced, **top))
    except ValidationError as exc:  # the recipe's own settings validate: a failure is the user's advanced override
        raise ValueError(
            describe_validation_error(exc, "unlearning.advanced.", {k: "unlearning." for k in TOP_LEVEL})
        ) from None


class ErasureRequest(Strict):
    request: RequestInfo
    target: Target
    base_model: str = Field(
        "digits",
        description="local diffusers folder, 'digits' / 'text-digits' (embedded defaults), or models:/name@alias",
    )
    classifier: str = Field("digits", description="evaluator: local classifier folder, or 'digits'")
    data: DataSources = DataSources()
    curation: CurationSettings = CurationSettings()
    unlearning: UnlearnSettings = Field(
        description="the effective settings: `unlearning.recipe` expanded for the target kind, "
        "with `unlearning.advanced` over it (written as UnlearningChoice)"
    )
    checkpoint_every: int = Field(25, ge=0, description="steps between resumable checkpoints (0 = none)")
    evaluation: RequestEvaluation = RequestEvaluation()
    gates: GateSettings = GateSettings()
    registry: RegistrySettings = RegistrySettings()
    tracking: TrackingSettings = TrackingSettings()
    notify: NotifySettings | None = Field(
        None, description="a webhook told of each event: awaiting approval, gated out, failed, promoted, reviewed"
    )

    @model_validator(mode="before")
    @classmethod
    def _expand_recipe(cls, data: Any) -> Any:
        """Validate the written `unlearning:` block once, into the settings the pipeline runs and records."""
        if not isinstance(data, dict) or isinstance(data.get("unlearning"), UnlearnSettings):
            return data
        target = data.get("target")
        concept = (
            target.kind == "concept"
            if isinstance(target, Target)
            else isinstance(target, dict) and target.get("concept") is not None
        )
        return {**data, "unlearning": expand_unlearning(data.get("unlearning", {}), "concept" if concept else "class")}

    @field_serializer("unlearning")
    def _as_written(self, settings: UnlearnSettings, info: FieldSerializationInfo) -> dict:
        """Dumped in the form a request is written in, every effective setting under advanced, so it validates back
        equal."""
        flat = settings.model_dump(mode=info.mode, by_alias=True)
        recipe = flat.pop("recipe") or "paper"
        return {"recipe": recipe, **{k: flat.pop(k) for k in TOP_LEVEL}, "advanced": flat}

    @model_validator(mode="after")
    def _consistent(self) -> "ErasureRequest":
        kind = self.target.kind
        if kind == "class" and self.unlearning.adapter is not None:
            raise ValueError(
                "unlearning.advanced.adapter (LoRA) is for text-to-image pipelines; a class model trains full weights: "
                "remove it"
            )
        if kind == "concept" and self.unlearning.forget_row != "keep":
            raise ValueError(
                "unlearning.advanced.forget_row null sets the forgotten classes' embedding rows of a class-conditional "
                "model; a text-to-image pipeline has none: use keep"
            )
        if kind == "class" and set(self.evaluation.neighbours) & set(self.target.classes):
            raise ValueError(
                f"evaluation.neighbours {self.evaluation.neighbours} include a class to forget: neighbours are "
                "retained classes"
            )
        for name in ("forget", "retain"):
            source = getattr(self.data, name)
            if kind == "class" and isinstance(source, Generated):
                raise ValueError(
                    f"data.{name}: generation is for concept targets; a class request takes 'digits' or a labels.csv "
                    "folder"
                )
        if kind == "concept":
            for name in ("forget", "retain"):
                self.source(name)  # a generated set without prompts fails here
            if self.evaluation.text_to_image is None:
                raise ValueError(
                    "evaluation.text_to_image is required for a concept request (nudity, captions and/or classes)"
                )
            if self.gates.nudity_rate_max is None and self.gates.forgotten_accuracy_max is None:
                raise ValueError(
                    "a concept request needs a forget-side gate (nudity_rate_max, or forgotten_accuracy_max with "
                    "evaluation.text_to_image.classes): without one the erasure is neither proven now nor re-checked "
                    "by later requests"
                )
            if self.unlearning.uses_substitutes and not self.target.anchors:
                raise ValueError(
                    f"unlearning: method {self.unlearning.method} (forget_loss {self.unlearning.forget_loss}) aims the "
                    "concept at "
                    "target.anchors: list at least one anchor prompt, or use a method without substitutes (esd, "
                    "neggrad, finetune)"
                )
        unmeasured = [
            g
            for g, metric in GATE_METRICS.items()
            if getattr(self.gates, g) is not None and metric not in self.measured_metrics()
        ]
        if unmeasured:
            raise ValueError(
                f"gates {', '.join(unmeasured)} are checked but the evaluation does not measure them: set them null or "
                "configure the measure"
            )
        return self

    def measured_metrics(self) -> set[str]:
        """Metric families the configured evaluation produces (a gate on anything else could never pass)."""
        e = self.evaluation
        if self.target.kind == "class":
            return (
                {"accuracy", "fid"}
                | ({"neighbours"} if e.neighbours else set())
                | ({"attacks"} if e.attacks else set())
            )
        t = e.text_to_image
        return (
            ({"nudity"} if t.nudity else set())
            | ({"clip"} if t.captions else set())
            | ({"accuracy"} if t.classes else set())
            | ({"neighbours"} if t.classes and t.classes.neighbours else set())
            | ({"fid"} if (t.captions and t.captions.reference_dir) or (t.classes and t.classes.reference) else set())
            | ({"drift"} if t.classes and t.classes.reference else set())
            | ({"sharpness"} if t.classes or t.captions else set())
            | ({"attacks"} if t.attacks else set())
        )

    def source(self, name: str) -> str | Generation:
        """The data source of set `name` with defaults filled in: a folder path, 'digits', or a Generation with its
        prompts."""
        source = getattr(self.data, name)
        if self.target.kind == "class":
            return source or "digits"
        generation = Generation() if source is None else source.generate if isinstance(source, Generated) else source
        if isinstance(generation, Generation) and generation.prompts is None:
            default = self.target.prompts if name == "forget" else self.target.anchors
            if not default:
                raise ValueError(
                    f"data.{name} generation has no prompts: set target.{'prompts' if name == 'forget' else 'anchors'} "
                    f"or data.{name}.generate.prompts"
                )
            generation = generation.model_copy(update={"prompts": default})
        return generation

    def prompt_eval_config(self) -> PromptEvalConfig:
        return self.evaluation.text_to_image

    def eval_config(self, earlier_classes: list[int] | None = None) -> ClassEvalConfig:
        e = self.evaluation
        return ClassEvalConfig(
            forget_classes=self.target.classes,
            classifier=self.classifier,
            generation=e.generation,
            reference=e.reference,
            fid=e.fid,
            neighbours=e.neighbours,
            attacks=e.attacks,
            grid_per_class=e.grid_per_class,
            earlier_forget_classes=earlier_classes or [],
        )

    def as_params(self) -> dict:
        """Plain JSON-able form that round-trips through `ErasureRequest.model_validate` (pipeline parameters)."""
        return self.model_dump(mode="json", by_alias=True)


def load_request(path: str | Path) -> ErasureRequest:
    return load_yaml_config(path, ErasureRequest)
