"""The two erasure tasks of the trade-off benchmark, each with its unlearning call, its forgetting probe and its final
evaluation.

Both tasks hold everything that does not depend on the method (model, sets, base-model samples) so
that every method and seed is measured against the same things. The final evaluation also computes the
shipped request's FID/KID gates (same thresholds, same gate code, against the same real digits), so that
"equal quality" means what a request would promote.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from erasediff.comparison.class_models import real_digits_stats
from erasediff.data.digits import load_digits_split
from erasediff.data.image_sets import CaptionedImages, split_forget_retain
from erasediff.data.prompts import PromptRow
from erasediff.defaults.digits_models import digits_split_seed
from erasediff.defaults.resolve import resolve_classifier, resolve_model
from erasediff.defaults.text_digits import TEMPLATES, caption_of, digit_prompt_rows, text_digits_default
from erasediff.evaluation.class_accuracy import mean_accuracy, sample_per_class, score_samples
from erasediff.evaluation.features import classifier_features
from erasediff.evaluation.fid import ReferenceStats, features_of_tensors, fid_kid, kid_between, reference_stats
from erasediff.evaluation.metric_settings import EvalSettings, FidSettings
from erasediff.method.runtime.probe import (
    Probe,
    ProbeReading,
    accuracy_probe,
    class_sampler,
    probe_labels,
    prompt_sampler,
)
from erasediff.method.targets.classes import unlearn_classes
from erasediff.method.targets.concept import unlearn_concept
from erasediff.method.unlearning_settings import UnlearnSettings
from erasediff.models.sampling import sample_prompts, to_channels
from erasediff.models.text_pipeline import load_text_to_image
from erasediff.request.gates import GATES
from erasediff.request.schema import load_request

CHANCE = 0.1  # ten digits
FORGET_BAR = CHANCE + 0.05  # "forgotten": the forgotten class is drawn no more often than chance + 5 points
RETAINED_POINTS = 0.05  # equal quality keeps the retained accuracy within 5 points of the base model
QUALITY_GATES = (
    "fid_increase_max",
    "kid_increase_max",
    "kid_drift_max",
)  # the request's FID/KID gates, where it sets them
CONFIGS = Path(__file__).parents[1] / "configs"


@dataclass(frozen=True)
class Scores:
    forgotten: float  # evaluator accuracy on samples asked for the forgotten class
    retained: float  # mean over the other classes
    fid: float  # classifier-feature FID of the retained classes' samples against the base model's
    gates: dict[str, float | None] = field(
        default_factory=dict
    )  # the request's FID/KID gate values (None: not measurable)
    quality_ok: bool = True  # every one of them inside its threshold (a missing value fails, as in a request)


class Judge:
    """Scores a UNet against the base at one sample size, on the same seeds for every model: the classifier's
    accuracies,
    the FID against the base's retained-class samples, and the shipped request's FID/KID gates against real digits."""

    def __init__(self, task: "Task", per_class: int, base_unet: torch.nn.Module) -> None:
        self.task, self.per_class = task, per_class
        images, labels = task.samples(base_unet, per_class)
        kept = torch.isin(labels, torch.tensor(task.retained))
        self.reference = reference_stats(images[kept], task.extractor, None, 2)
        self.base_features = features_of_tensors(images[kept], task.extractor)
        self.base_metrics = fid_kid(self.base_features, task.real, task.extractor).metrics()
        self.base = self._score(images, labels)

    def __call__(self, unet: torch.nn.Module) -> Scores:
        return self._score(*self.task.samples(unet, self.per_class))

    def _score(self, images: torch.Tensor, labels: torch.Tensor) -> Scores:
        t = self.task
        scores = score_samples(t.classifier, images, labels)
        kept = torch.isin(labels, torch.tensor(t.retained))
        features = features_of_tensors(images[kept], t.extractor)
        metrics = fid_kid(features, t.real, t.extractor).metrics()
        metrics[f"drift_kid_{t.extractor.name}"] = kid_between(features, self.base_features, t.real)
        gates = {name: GATES[name][1](self.base_metrics, metrics, "point") for name in t.thresholds}
        return Scores(
            mean_accuracy(scores, t.forget_classes),
            mean_accuracy(scores, t.retained),
            fid_kid(features, self.reference, t.extractor).fid,
            gates,
            all(v is not None and v <= t.thresholds[name] for name, v in gates.items()),
        )

    def of_equal_quality(self, scores: Scores) -> bool:
        """Forgotten on this judge's larger sample too, retained accuracy within RETAINED_POINTS, the FID/KID gates
        passed."""
        return (
            scores.forgotten <= FORGET_BAR
            and self.base.retained - scores.retained <= RETAINED_POINTS
            and scores.quality_ok
        )


class Task:
    """What every method is measured against: the base's scores at the final sample size, and (with `until_quality`) a
    forgetting probe that reads "forgotten" only once the model is also of equal quality at the check sample size."""

    classifier: object
    extractor: object
    forget_classes: list[int]
    retained: list[int]
    request: str  # the shipped request whose gate thresholds define "equal quality"
    real: ReferenceStats
    check_per_class: int  # sample size of the in-run quality check (the final judgement uses the task's eval size)

    def samples(self, unet: torch.nn.Module, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def _judges(self, base_unet: torch.nn.Module, per_class: int) -> None:
        gates = load_request(CONFIGS / self.request).gates
        self.thresholds = {name: value for name in QUALITY_GATES if (value := getattr(gates, name)) is not None}
        self.judge = Judge(self, per_class, base_unet)
        self.base = self.judge.base
        self.check = Judge(self, min(self.check_per_class, per_class), base_unet)

    def probe_until(self, probe: Probe, until_quality: bool) -> Probe:
        """`probe`, or with `until_quality` the same probe read as forgotten only when the check judge also finds the
        model
        of equal quality (checked only once it forgets: the check costs seconds, the probe excludes them from update
        time)."""
        if not until_quality:
            return probe

        def read(unet: torch.nn.Module) -> ProbeReading:
            reading = probe(unet)
            if not reading.forgotten:
                return reading
            ok = self.check.of_equal_quality(self.check(unet))
            return ProbeReading(reading.degradation, ok, {**reading.values, "equal_quality": float(ok)})

        return read


class DigitsTask(Task):
    """Forget class 3 of the embedded class-conditional digits DDPM (real images of 3 as the forget set)."""

    name = "digits"
    title = "digits DDPM: forget class 3"
    settings = {"steps": 50, "batch_size": 32, "forget_batch_size": 32, "lr": 1e-4}
    probe_every = 5
    request = "request_digits_forget_3.yaml"
    until_quality = {"steps": 100, "probe_every": 10}  # the request's step budget; a quality check costs about 5 s
    check_per_class = 30

    def __init__(self, eval_per_class: int = 100) -> None:
        self.model = resolve_model("digits")
        self.classifier, weights = resolve_classifier("digits")
        self.extractor = classifier_features(self.classifier, weights)
        train, _ = load_digits_split(self.model.unet.config.sample_size)
        self.forget_classes = [3]
        self.forget, self.retain = split_forget_retain(train, self.forget_classes, self.model.num_classes)
        self.retained = [c for c in range(self.model.num_classes) if c not in self.forget_classes]
        self.real = real_digits_stats(
            self.model.unet.config.sample_size,
            digits_split_seed(self.model.lineage),
            self.retained,
            False,
            self.extractor,
            FidSettings(),
        )
        self._judges(self.model.unet, eval_per_class)

    def samples(self, unet: torch.nn.Module, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        return sample_per_class(
            replace(self.model, unet=unet), EvalSettings(samples_per_class=per_class, steps=15), progress=False
        )

    def probe(self, unet: torch.nn.Module) -> Probe:
        labels = probe_labels(self.forget_classes, self.retained, 20, 1)
        sample = class_sampler(self.model.scheduler, self.model.null_class, labels, steps=8)
        return accuracy_probe(sample, labels, self.classifier, self.forget_classes, FORGET_BAR, unet)

    def run(self, settings: UnlearnSettings, callback, until_quality: bool = False) -> Scores:
        result = unlearn_classes(
            self.model,
            self.forget,
            self.retain,
            self.forget_classes,
            settings,
            callback=callback,
            progress=False,
            probe=lambda unet: self.probe_until(self.probe(unet), until_quality),
        )
        return self.judge(result.unet)


class TextDigitsTask(Task):
    """Forget "seven" from the embedded tiny text-to-image model: the forget set is generated by the model from the
    three seven prompts, the retain set is the captioned digits without sevens, remap aims at the other digits'
    captions."""

    name = "text"
    title = 'text-to-image: forget "seven"'
    settings = {"steps": 80, "batch_size": 16, "forget_batch_size": 16, "lr": 3e-4, "params": {"preset": "noxattn"}}
    probe_every = 10
    digit = 7
    request = "request_text_digits_forget_seven.yaml"
    until_quality = {"steps": 150, "probe_every": 10}  # the request's step budget
    check_per_class = 20

    def __init__(self, eval_per_class: int = 40) -> None:
        self.pipe = load_text_to_image(text_digits_default(progress=False))
        self.pipe.set_progress_bar_config(disable=True)
        self.classifier, weights = resolve_classifier("digits")
        self.extractor = classifier_features(self.classifier, weights)
        self.forget, self.retain, self.anchors = self.sets(self.pipe)
        self.forget_classes, self.retained = [self.digit], [d for d in range(10) if d != self.digit]
        self.real = real_digits_stats(
            self.classifier.config.resolution, 0, self.retained, False, self.extractor, FidSettings()
        )
        self._judges(self.pipe.unet, eval_per_class)

    @classmethod
    def sets(cls, pipe, digit: int | None = None) -> tuple[CaptionedImages, CaptionedImages, list[str]]:
        """What the "seven" request curates (or the same request for another `digit`): 32 generated images per seven
        prompt (25 steps, guidance 4), the captioned training digits without sevens, and every other digit's captions
        as remap anchors."""
        digit = cls.digit if digit is None else digit
        prompts = [caption_of(digit, t) for t in TEMPLATES]
        rows = [PromptRow(p, 1000 * i + j, None) for i, p in enumerate(prompts) for j in range(32)]
        forget = CaptionedImages(
            sample_prompts(pipe, rows, 25, 4.0, batch_size=len(rows), progress=False), [r.prompt for r in rows]
        )
        train, _ = load_digits_split(16)
        captions = [caption_of(d, TEMPLATES[i % len(TEMPLATES)]) for i, d in enumerate(train.labels.tolist())]
        keep = [i for i, d in enumerate(train.labels.tolist()) if d != digit]
        retain = CaptionedImages(train.images[keep].repeat(1, 3, 1, 1), [captions[i] for i in keep])
        return forget, retain, [caption_of(d, t) for d in range(10) if d != digit for t in TEMPLATES]

    def samples(self, unet: torch.nn.Module, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
        rows = digit_prompt_rows(per_class, seed=100_000)
        images = prompt_sampler(self.pipe, [r for r, _ in rows], 15, 4.0)(unet)
        return to_channels(images, self.classifier.config.in_channels), torch.tensor([d for _, d in rows])

    def probe(self, unet: torch.nn.Module) -> Probe:
        rows = digit_prompt_rows(15, seed=200_000, digits=[self.digit]) + [
            r for d in self.retained for r in digit_prompt_rows(1, 300_000 + d, [d])
        ]
        sample = prompt_sampler(self.pipe, [r for r, _ in rows], 10, 4.0)
        return accuracy_probe(
            sample, torch.tensor([d for _, d in rows]), self.classifier, [self.digit], FORGET_BAR, unet
        )

    def run(self, settings: UnlearnSettings, callback, until_quality: bool = False) -> Scores:
        unet = unlearn_concept(
            self.pipe,
            self.forget,
            self.retain,
            self.anchors,
            settings,
            callback=callback,
            progress=False,
            probe=lambda base: self.probe_until(self.probe(base), until_quality),
        )
        return self.judge(unet)


TASKS = {task.name: task for task in (DigitsTask, TextDigitsTask)}
