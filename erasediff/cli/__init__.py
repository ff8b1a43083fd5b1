"""`erasediff` command line: train-base, train-text-digits, unlearn, evaluate, sample. Bad input ends in one `error:`
line and exit 2."""

import argparse
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from erasediff.util.exits import one_error_line
from erasediff.util.offline import go_offline


def _cmd_train_base(args: argparse.Namespace) -> None:
    import json

    from erasediff.defaults.digits_models import RECORD, BaseTrainConfig, train_base
    from erasediff.util.config import load_yaml_config

    config = load_yaml_config(args.config, BaseTrainConfig) if args.config else BaseTrainConfig()
    folder = train_base(config, root=args.cache_dir, force=args.force)
    record = json.loads((folder / RECORD).read_text())
    print(
        f"digits DDPM and evaluator: {folder} (config {record['config_hash']}, seed {record['seed']}, trained in "
        f"{record['train_seconds']} s)"
    )
    per_class = ", ".join(f"{c}: {a:.0%}" for c, a in record["class_accuracy"].items())
    print(
        f"recorded quality: mean class accuracy {record['mean_class_accuracy']:.1%} ({per_class}); evaluator held-out "
        f"accuracy {record['classifier_heldout_accuracy']:.1%}"
    )


def _cmd_train_text_digits(args: argparse.Namespace) -> None:
    import json

    from erasediff.defaults.text_digits import PIPELINE_DIR, RECORD, TextDigitsConfig, train_text_digits
    from erasediff.util.config import load_yaml_config

    config = load_yaml_config(args.config, TextDigitsConfig) if args.config else TextDigitsConfig()
    folder = train_text_digits(config, root=args.cache_dir, force=args.force)
    record = json.loads((folder / RECORD).read_text())
    print(
        f"tiny text-to-image digits pipeline: {folder / PIPELINE_DIR} (config {record['config_hash']}, trained in "
        f"{record['train_seconds']} s)"
    )
    print(
        "recorded quality (digit prompts read as their digit): "
        + ", ".join(f"{c}: {a:.0%}" for c, a in record["prompt_accuracy"].items())
    )


def _cmd_unlearn(args: argparse.Namespace) -> None:
    from erasediff.cli.standalone_unlearn import UnlearnRunConfig, run_unlearn
    from erasediff.util.config import load_yaml_config

    config = load_yaml_config(args.config, UnlearnRunConfig)
    if args.output_dir:
        config = config.model_copy(update={"output_dir": args.output_dir})
    run_unlearn(config)


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from erasediff.comparison.class_models import RESULTS_MD, evaluate_pair
    from erasediff.comparison.eval_config import ClassEvalConfig, PromptEvalConfig
    from erasediff.comparison.text_to_image import evaluate_prompt_pair
    from erasediff.util.config import load_yaml_config, peek_key

    if peek_key(args.config, "task") == "text-to-image":
        evaluate_prompt_pair(args.original, args.unlearned, load_yaml_config(args.config, PromptEvalConfig), args.out)
    else:
        evaluate_pair(args.original, args.unlearned, load_yaml_config(args.config, ClassEvalConfig), args.out)
    print((args.out / RESULTS_MD).read_text(), end="")
    print(f"results, samples and grids: {args.out}")


def _cmd_sample(args: argparse.Namespace) -> None:
    import torch

    from erasediff.defaults.resolve import resolve_model
    from erasediff.models.sampling import sample_classes
    from erasediff.reporting.plots import save_class_grid

    model = resolve_model(args.model)
    labels = torch.tensor(args.classes or list(range(model.num_classes))).repeat_interleave(args.per_class)
    images = sample_classes(
        model.unet, model.scheduler, labels, model.null_class, args.guidance, args.steps, args.sampler, args.seed
    )
    print(f"wrote {save_class_grid(images, labels, args.per_class, args.out)}")


def build_parser(extend: Callable[[argparse._SubParsersAction], None] | None = None) -> argparse.ArgumentParser:
    """The library's commands; `extend` adds more (the pipeline's `request` commands, pipelines/cli.py)."""
    parser = argparse.ArgumentParser(prog="erasediff", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train-base", help="train (or reuse cached) digits DDPM + evaluator and print the quality table")
    p.add_argument("--config", type=Path, help="YAML overriding BaseTrainConfig fields")
    p.add_argument(
        "--cache-dir", type=Path, help="root of the model cache (default $ERASEDIFF_CACHE or ~/.cache/erasediff)"
    )
    p.add_argument("--force", action="store_true", help="retrain even when a cached model exists")
    p.set_defaults(func=_cmd_train_base)

    p = sub.add_parser("train-text-digits", help="train (or reuse) the tiny SD-layout text-to-image digits pipeline")
    p.add_argument("--config", type=Path, help="YAML overriding TextDigitsConfig fields")
    p.add_argument(
        "--cache-dir", type=Path, help="root of the model cache (default $ERASEDIFF_CACHE or ~/.cache/erasediff)"
    )
    p.add_argument("--force", action="store_true", help="retrain even when a packaged or cached model exists")
    p.set_defaults(func=_cmd_train_text_digits)

    p = sub.add_parser("unlearn", help="run EraseDiff from a YAML config and print the before/after table")
    p.add_argument("config", type=Path)
    p.add_argument("--output-dir", type=Path, help="override the config's output_dir")
    p.set_defaults(func=_cmd_unlearn)

    p = sub.add_parser("evaluate", help="original vs unlearned side by side: accuracy, FID/KID, grids, results table")
    p.add_argument("--original", required=True, help="local diffusers folder, or 'digits'")
    p.add_argument("--unlearned", required=True, help="local diffusers folder")
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, default=Path("evaluation"))
    p.set_defaults(func=_cmd_evaluate)

    p = sub.add_parser("sample", help="write a grid of class-conditional samples")
    p.add_argument("--model", default="digits", help="local diffusers folder, or 'digits'")
    p.add_argument("--classes", type=int, nargs="*")
    p.add_argument("--per-class", type=int, default=8)
    p.add_argument("--guidance", type=float, default=2.0)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sampler", choices=["ddim", "ddpm"], default="ddim")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("samples.png"))
    p.set_defaults(func=_cmd_sample)
    if extend is not None:
        extend(sub)
    return parser


def main(argv: list[str] | None = None, extend: Callable[[argparse._SubParsersAction], None] | None = None) -> int:
    go_offline()
    logging.basicConfig(
        level=logging.INFO, format="%(message)s"
    )  # the library logs what it did (training records, tables)
    args = build_parser(extend).parse_args(argv)
    command: Callable[[argparse.Namespace], int | None] = args.func
    with one_error_line() as outcome:
        outcome.code = command(args) or 0
    return outcome.code


if __name__ == "__main__":
    sys.exit(main())
