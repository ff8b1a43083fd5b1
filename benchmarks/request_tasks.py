"""The two shipped embedded requests as benchmark tasks, measured exactly as the pipeline measures them.

Each task loads its request YAML (gates, evaluation settings, unlearning settings), builds the same
forget and retain sets, samples a model with the request's evaluation settings and seeds, and turns
samples into the metrics the gates read (`measure_class_samples` / `measure_prompt_classes`, the
functions the evaluation stage calls). Benchmarks then change one thing (the samples, the weights,
the base model) and ask `evaluate_gates` what the shipped gates make of it.
"""

from pathlib import Path

import torch
import yaml

from erasediff.attacks.gold import retrained_gold, retrained_text_gold
from erasediff.comparison.class_models import build_extractor, measure_class_samples, real_reference
from erasediff.comparison.text_to_image import class_labels, digits_reference, measure_prompt_classes
from erasediff.data.digits import DIGIT_NAMES, load_digits_split
from erasediff.data.image_sets import split_forget_retain
from erasediff.data.prompts import load_prompt_csv
from erasediff.defaults.digits_models import BaseTrainConfig, digits_split_seed, train_ddpm
from erasediff.defaults.resolve import resolve_classifier, resolve_model
from erasediff.defaults.text_digits import (
    TEMPLATES,
    TextDigitsConfig,
    build_pipeline,
    caption_of,
    text_digits_default,
    train_unet,
    train_vae,
)
from erasediff.method.runtime.probe import prompt_sampler
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.class_model import load_class_model, save_class_model
from erasediff.models.sampling import sample_classes
from erasediff.models.text_encoding import encode_images
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.request.gates import ATTACK_GATES, GateReport, evaluate_gates
from erasediff.request.schema import ErasureRequest, load_request
from erasediff.util.atomic import atomic_dir
from erasediff.util.cache import default_cache_root

CONFIGS = Path(__file__).parents[1] / "configs"


class RequestTask:
    """What both tasks share: the request, its gates, and the original model's metrics to compare with."""

    name: str
    request_file: str

    def __init__(self) -> None:
        self.request = load_request(CONFIGS / self.request_file)

    def gates(self, metrics: dict[str, float]) -> GateReport:
        """The request's gates on these metrics; the attack gates are left to benchmarks/robustness.py (no attacks run
        here)."""
        results = {
            "models": {"original": {"metrics": self.original_metrics}, "unlearned": {"metrics": metrics}},
            "forget_classes": self.forget_classes,
        }
        return evaluate_gates(self.request.gates.model_copy(update=dict.fromkeys(ATTACK_GATES)), results)

    def settings(self, seed: int, **overrides) -> UnlearnSettings:
        """The request's unlearning settings with `overrides` (nested dicts, e.g. another method) and this seed."""
        return UnlearnSettings.model_validate(
            {**self.request.unlearning.model_dump(by_alias=True), **overrides, "seed": seed}
        )

    def measure_unet(self, unet: torch.nn.Module, model=None) -> dict[str, float]:
        return self.measure(*self.sample(unet, model))


class DigitsRequest(RequestTask):
    """configs/request_digits_forget_3.yaml: the class-conditional digits DDPM, forget class 3 (or, for breadth,
    another class under the same request: `digits_request_for`)."""

    name, request_file = "digits", "request_digits_forget_3.yaml"
    half_steps = BaseTrainConfig().steps // 2

    def __init__(self, digit: int = 3) -> None:
        super().__init__()
        if self.request.target.classes != [digit]:
            self.request = digits_request_for(digit)
        self.model = resolve_model(self.request.base_model)
        self.classifier, weights = resolve_classifier(self.request.classifier)
        self.config = self.request.eval_config()
        self.forget_classes = self.request.target.classes
        self.retained = [c for c in range(self.model.num_classes) if c not in self.forget_classes]
        self.extractor = build_extractor(self.config.fid, self.classifier, weights)
        self.reference = real_reference(self.model, self.retained, self.config, self.extractor)
        train, _ = load_digits_split(self.model.unet.config.sample_size, seed=digits_split_seed(self.model.lineage))
        self.train = train
        self.forget, self.retain = split_forget_retain(train, self.forget_classes, self.model.num_classes)
        self.original_metrics = self.measure(*self.sample(self.model.unet))

    def sample(
        self, unet: torch.nn.Module, model=None, per_class: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        g = self.config.generation
        model = model or self.model
        labels = torch.arange(model.num_classes).repeat_interleave(per_class or g.samples_per_class)
        images = sample_classes(
            unet,
            model.scheduler,
            labels,
            model.null_class,
            g.diffusers_scale(),
            g.steps,
            g.sampler,
            g.seed,
            g.batch_size,
            False,
        )
        return images, labels

    def measure(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        return measure_class_samples(
            images,
            labels,
            self.classifier,
            self.extractor,
            self.reference,
            self.forget_classes,
            self.retained,
            [],
            self.config.neighbours,
        )[0]

    def unlearn(self, seed: int, model=None, **overrides):
        """The request's unlearning (EraseDiff by default) of `model` (default: the base), returned as its UNet."""
        return unlearn_classes(
            model or self.model,
            self.forget,
            self.retain,
            self.forget_classes,
            self.settings(seed, **overrides),
            progress=False,
        ).unet

    def trained_for(self, steps: int):
        """The base model's recipe stopped after `steps` of its steps (cached in the benchmark cache)."""
        folder = default_cache_root() / "benchmarks" / f"digits-stopped-{steps}"
        if not folder.is_dir():
            save_class_model(
                train_ddpm(self.train.images, self.train.labels, BaseTrainConfig(), progress=True, stop_after=steps),
                folder,
            )
        return load_class_model(folder)

    def gold(self):
        """The base recipe retrained without the forgotten class (the attacks' gold standard; packaged, cached or
        trained now)."""
        return retrained_gold(self.retain, self.forget_classes)

    def quick_retained(self, unet: torch.nn.Module) -> float:
        images, labels = self.sample(unet, per_class=20)
        return self.measure(images, labels)["retained_accuracy"]


def digits_request_for(digit: int) -> ErasureRequest:
    """The shipped class-3 request with only its class changed, for breadth (not a shipped config): the forgotten
    class, and the neighbours without that class; settings, budgets and gates as shipped."""
    raw = yaml.safe_load((CONFIGS / DigitsRequest.request_file).read_text())
    raw["request"]["id"] = f"REQ-digits-forget-{digit}"
    raw["target"]["classes"] = [digit]
    raw["evaluation"]["neighbours"] = [n for n in raw["evaluation"]["neighbours"] if n != digit]
    return ErasureRequest.model_validate(raw)


def text_request_for(digit: int) -> ErasureRequest:
    """The shipped "seven" request with only its concept changed, for breadth (not a shipped config): the target's
    prompts and remap anchors, the evaluated class, and the neighbours without that digit; settings, budgets and gates
    as shipped."""
    raw = yaml.safe_load((CONFIGS / TextRequest.request_file).read_text())
    raw["request"]["id"] = f"REQ-text-digits-{DIGIT_NAMES[digit]}"
    raw["target"].update(
        concept=f"the digit {DIGIT_NAMES[digit]}",
        prompts=[caption_of(digit, t) for t in TEMPLATES],
        anchors=[caption_of(d, t) for d in range(len(DIGIT_NAMES)) if d != digit for t in TEMPLATES],
    )
    classes = raw["evaluation"]["text_to_image"]["classes"]
    classes.update(forget_classes=[digit], neighbours=[n for n in classes["neighbours"] if n != digit])
    return ErasureRequest.model_validate(raw)


class TextRequest(RequestTask):
    """configs/request_text_digits_forget_seven.yaml: the tiny text-to-image model, forget "seven" (or, for breadth,
    another digit under the same request: `text_request_for`)."""

    name, request_file = "text", "request_text_digits_forget_seven.yaml"
    half_steps = TextDigitsConfig().unet_steps // 2

    def __init__(self, digit: int = 7) -> None:
        from tradeoff_tasks import TextDigitsTask  # the same generated forget set and captioned retain set

        super().__init__()
        if digit != TextDigitsTask.digit:
            self.request = text_request_for(digit)
        self.pipe = load_text_to_image(text_digits_default(progress=False))
        self.pipe.set_progress_bar_config(disable=True)
        t = self.request.evaluation.text_to_image
        self.t, classes = t, t.classes
        self.classifier, weights = resolve_classifier(classes.classifier)
        self.rows = load_prompt_csv(Path(__file__).parents[1] / classes.prompts, classes.limit)
        self.labels = class_labels(self.rows, classes)
        self.forget_classes = classes.forget_classes
        self.class_reference = (
            digits_reference(classes, self.labels, self.classifier, weights) if classes.reference else None
        )
        self.forget, self.retain, self.anchors = TextDigitsTask.sets(self.pipe, digit)
        self.original_images: torch.Tensor | None = (
            None  # the original's samples of every row: what drift is measured against
        )
        images, labels = self.sample(self.pipe.unet)
        self.original_metrics = self.measure(images, labels)
        self.original_images = images

    def sample(self, unet: torch.nn.Module, pipe=None, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
        rows = rows or self.rows
        images = prompt_sampler(pipe or self.pipe, rows, self.t.steps, self.t.guidance)(unet)
        return images, torch.tensor([r.label for r in rows])

    def measure(self, images: torch.Tensor, labels: torch.Tensor, drift: bool = True) -> dict[str, float]:
        """The evaluation's metrics; with `drift`, also against the original's samples of the same (all) rows."""
        return measure_prompt_classes(
            images,
            labels,
            self.classifier,
            self.forget_classes,
            self.class_reference,
            self.t.classes.neighbours,
            self.original_images if drift else None,
        )[0]

    def unlearn(self, seed: int, pipe=None, **overrides):
        return unlearn_concept(
            pipe or self.pipe, self.forget, self.retain, self.anchors, self.settings(seed, **overrides), progress=False
        )

    def trained_for(self, steps: int):
        """The tiny model's recipe with its UNet training stopped after `steps` (cached in the benchmark cache)."""
        folder = default_cache_root() / "benchmarks" / f"text-digits-stopped-{steps}"
        if not folder.is_dir():
            config = TextDigitsConfig()
            train, _ = load_digits_split(seed=config.seed)
            images = train.images.repeat(1, 3, 1, 1)
            pipe = build_pipeline(config)
            train_vae(pipe.vae, images, config)
            train_unet(
                pipe,
                encode_images(pipe, images, batch_size=256, progress=False),
                train.labels,
                config,
                stop_after=steps,
            )
            with atomic_dir(folder) as scratch:
                pipe.save_pretrained(scratch, safe_serialization=True)
        pipe = load_text_to_image(folder)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def gold(self):
        """The tiny model's pipeline with its UNet retrained without the concept's digit (the attacks' gold standard;
        shipped for "seven", trained and cached on first use for another digit)."""
        pipe = load_text_to_image(retrained_text_gold(text_digits_default(progress=False), self.forget_classes))
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def quick_retained(self, unet: torch.nn.Module) -> float:
        rows = [r for i, r in enumerate(self.rows) if i % 6 == 0]  # 20 prompts a digit
        return self.measure(*self.sample(unet, rows=rows), drift=False)["retained_accuracy"]


TASKS = {task.name: task for task in (DigitsRequest, TextRequest)}
