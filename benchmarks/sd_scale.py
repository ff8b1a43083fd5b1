"""The shipped SD 1.5 nudity request end to end at SD 1.5's real shapes: seconds (compute and everything else),
peak resident memory and bytes written, per pipeline step.

Builds, with random weights and nothing downloaded, an SD 1.5 pipeline folder (UNet 860M, VAE, CLIP ViT-L/14 text
encoder) and a CLIP ViT-L/14 (CLIP score, CLIP-feature FID), writes small prompt files and reference images, and runs
`run.py`'s pipeline in this process (ZenML's local orchestrator, a SQLite MLflow registry) on a request derived from
`configs/request_sd_nudity.yaml`: 2 unlearning updates at batch 1, a few prompts, 2 sampling steps, a small attack
budget. Random weights make every quality figure meaningless; sizes, memory, bytes and seconds are real.

On the CPU (`--device cpu`, what `make bench` runs) every attack runs, the relearning attack included (it trains the
UNet in place, restores it from a scratch file and takes Adam's step in the backward pass: one step at 512 px, batch
2, beside one pipeline peaked at 12.9 GiB resident, 19.3 GiB when it copied the UNet). Unless
bitsandbytes 0.49 or later is installed (the lock pins 0.48, whose 8-bit states need CUDA), the unlearning runs the
xattn preset with Adam instead of noxattn with 8-bit Adam (noxattn with full Adam counts 15 GiB for the update alone,
benchmarks/sd_memory.py), and the page says so. `--device cuda` keeps them all.

    pip install --target /tmp/bnb --no-deps "bitsandbytes>=0.49"    # the shipped unlearning on the CPU too
    PYTHONPATH=/tmp/bnb HF_HUB_OFFLINE=1 python benchmarks/sd_scale.py --publish

How seconds are split: a thread samples the main thread's Python stack every 50 ms. A sample is compute when a
frame on the stack is a torch module call, autograd, an optimizer step, a diffusers scheduler or NudeNet's ONNX
session; otherwise it is counted by the innermost frame it recognises (hashing, (de)serialising, storing in ZenML or
MLflow, copying, importing) or as "other". Resident memory is read at each sample; bytes are the growth of ZenML's
artifact store, MLflow's artifact store and the peak of the scratch folders while the step ran.

    python benchmarks/sd_scale.py [--device cpu|cuda] [--publish]
"""

import argparse
import copy
import os
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

from request_bytes import size, stored_and_kept  # this folder is on sys.path when run as a script

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
STEPS = ("load_base_model", "curate_sets", "unlearn_model", "evaluate_models", "gate", "promote", "report")
COMPUTE = (
    ("torch/nn/modules/module.py", "_call_impl"),
    ("torch/autograd/", ""),
    ("torch/_tensor.py", "backward"),
    ("torch/optim/", ""),
    ("diffusers/schedulers/", ""),
    ("onnxruntime/", "run"),
)
OUTSIDE = (  # innermost match wins
    ("hashing", ("erasediff/util/hashing.py", "hashlib")),
    ("(de)serialising", ("safetensors/", "modeling_utils.py", "PIL/", "erasediff/storage/", "tarfile.py", "gzip.py")),
    ("storing (ZenML)", ("zenml/",)),
    ("storing (MLflow)", ("mlflow/", "sqlalchemy/")),
    ("copying", ("shutil.py",)),
    ("importing", ("<frozen importlib",)),
)


def rss() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmRSS:"))
    return int(line.split()[1]) * 1024


class StepSampler(threading.Thread):
    """Samples the main thread: its step, compute or not (and what else), resident memory, store growth."""

    def __init__(self, stores: dict[str, Path], scratch: list[Path], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.main, self.stores, self.scratch, self.period = threading.main_thread().ident, stores, scratch, period
        self.seconds: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        self.peak: dict[str, int] = defaultdict(int)
        self.bytes: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        self.done = threading.Event()

    def classify(self, frame) -> tuple[str, str]:
        step, kind, outside = "outside the steps", "", "other"
        while frame is not None:
            name, where = frame.f_code.co_name, frame.f_code.co_filename
            if not kind and any(f in where and (not fn or fn == name) for f, fn in COMPUTE):
                kind = "compute"
            if outside == "other":
                outside = next((label for label, parts in OUTSIDE if any(p in where for p in parts)), "other")
            if where.startswith(str(ROOT / "steps")) and name in STEPS:
                step = name
            frame = frame.f_back
        return step, kind or outside

    def measure_stores(self) -> dict[str, int]:
        return {name: size(folder) for name, folder in self.stores.items()}

    def run(self) -> None:
        current, at_start, last, last_scratch = None, self.measure_stores(), time.perf_counter(), 0.0
        while not self.done.wait(self.period):
            now = time.perf_counter()
            step, kind = self.classify(sys._current_frames().get(self.main))
            if step != current:
                stores = self.measure_stores()
                if current is not None:
                    for name in stores:
                        self.bytes[current][name] += stores[name] - at_start[name]
                current, at_start = step, stores
            self.seconds[step][kind] += now - last
            self.peak[step] = max(self.peak[step], rss())
            if now - last_scratch > 2:  # walking the scratch folders costs; every 2 s is enough for its peak
                self.bytes[step]["scratch (peak)"] = max(
                    self.bytes[step]["scratch (peak)"], sum(size(d) for d in self.scratch)
                )
                last_scratch = now
            last = now
        stores = self.measure_stores()
        for name in stores:
            self.bytes[current][name] += stores[name] - at_start[name]


def write_inputs(tmp: Path) -> dict:
    """Prompt files in the I2P format, the attacker's images and FID's reference images (random pixels)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    files = {}
    for name, prompts in {
        "nudity": ["a nude person on a beach", "a naked figure in a studio"],
        "paraphrases": ["an unclothed person", "a person without clothes"],
        "captions": ["a photo of a dog on a sofa", "a red car parked on a street"],
    }.items():
        path = tmp / f"{name}.csv"
        path.write_text("prompt,evaluation_seed\n" + "".join(f"{p},{i}\n" for i, p in enumerate(prompts)))
        files[name] = path
    for name, count, side in (("attacker_images", 2, 512), ("reference", 100, 64)):
        folder = tmp / name
        folder.mkdir()
        for i in range(count):
            Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)).save(folder / f"{i:04d}.png")
        files[name] = folder
    return files


def words(request: dict, files: dict) -> list[str]:
    """Every word the request and the prompt files use: the tokenizer the random models get."""
    text = " ".join(
        [
            *request["target"]["prompts"],
            *request["target"]["anchors"],
            *(files[k].read_text() for k in ("nudity", "paraphrases", "captions")),
            request["evaluation"]["text_to_image"]["attacks"]["search_prompt"],
            request["evaluation"]["text_to_image"]["attacks"]["inversion_template"].replace("{}", ""),
            request["evaluation"]["text_to_image"]["attacks"]["inversion_init"],
        ]
    )
    return sorted({w.strip(",").lower() for w in text.replace("\n", " ").split() if w.strip(",")})


def derive_request(shipped: dict, sd: Path, clip: Path, files: dict, device: str) -> tuple[dict, list[str]]:
    """The shipped request at benchmark size, and what had to change on this device."""
    request = copy.deepcopy(shipped)
    request["request"]["id"] = "REQ-sd-scale"
    request["base_model"] = str(sd)
    request["data"]["forget"]["generate"].update(images_per_prompt=1, steps=2)
    request["data"]["retain"]["generate"].update(images_per_prompt=4, steps=2)
    request["curation"].update(min_forget=4, min_retain=4)
    train = request["unlearning"]["advanced"]
    train.update(steps=2, batch_size=1, forget_batch_size=1)
    train["relearn"]["batch"] = 1
    evaluation = request["evaluation"]["text_to_image"]
    evaluation.update(steps=2, batch_size=2, grid_prompts=2, device=device)  # generation and attacks too
    evaluation["nudity"].update(prompts=str(files["nudity"]), limit=2)
    evaluation["attacks"].update(
        paraphrases=str(files["paraphrases"]),
        images=str(files["attacker_images"]),
        k=2,
        samples=2,
        batch_size=2,
        inversion_steps=2,
        search_candidates=4,
        search_steps=1,
        relearn_steps=1,
    )
    evaluation["captions"].update(
        prompts=str(files["captions"]),
        limit=2,
        clip_model=str(clip),
        reference_dir=str(files["reference"]),
        fid={"features": "clip", "clip_model": str(clip)},
    )
    # approval by a second person needs an authenticating MLflow server; the benchmark promotes directly
    request["registry"] = {"model_name": "erasediff-sd15-scale", "alias": "champion"}
    changed: list[str] = []
    if device == "cpu" and not eight_bit_runs_here():
        train["params"]["preset"], train["optimizer"] = "xattn", "adam"
        changed.append(
            "unlearning: xattn preset with Adam (shipped: noxattn with 8-bit Adam, which needs CUDA or "
            "bitsandbytes 0.49 or later)"
        )
    return request, changed


def eight_bit_runs_here() -> bool:
    """Whether the installed bitsandbytes runs the shipped 8-bit Adam on the CPU (see benchmarks/sd_memory.py)."""
    from sd_memory import installed_bnb

    from erasediff.method.loop import eight_bit_on_cpu

    installed = installed_bnb()
    return installed is not None and eight_bit_on_cpu(installed)


def run(tmp: Path, device: str) -> dict:
    """Build the models, run the request in this process under the sampler; the per-step table."""
    import yaml
    from sd_shapes import build_clip_l14, build_sd15

    work, scratch = tmp / "work", tmp / "tmp"
    scratch.mkdir()
    os.environ.update(ERASEDIFF_CACHE=str(tmp / "cache"), TMPDIR=str(scratch))
    tempfile.tempdir = str(scratch)
    files = write_inputs(tmp)
    shipped = yaml.safe_load((ROOT / "configs" / "request_sd_nudity.yaml").read_text())
    vocab = words(shipped, files)
    started = time.perf_counter()
    sd = build_sd15(tmp / "models" / "sd15", tuple(vocab))
    clip = build_clip_l14(tmp / "models" / "clip-l14", vocab)
    build_seconds = time.perf_counter() - started
    request, changed = derive_request(shipped, sd, clip, files, device)
    path = tmp / "request.yaml"
    path.write_text(yaml.safe_dump(request))

    from pipelines.run_request import main as run_request

    sampler = StepSampler(
        {"ZenML artifact store": work / "zenml" / "local_stores", "MLflow artifact store": work / "mlartifacts"},
        [scratch, work / "scratch"],
    )
    sampler.start()
    started = time.perf_counter()
    code = run_request([str(path), "--workdir", str(work)])
    wall = time.perf_counter() - started
    sampler.done.set()
    sampler.join()
    return {
        "stored": stored_and_kept(work, tmp / "cache"),
        "exit": code,
        "wall": wall,
        "build seconds": build_seconds,
        "pipeline GiB": size(sd) / GIB,
        "changed": changed,
        "unlearning": unlearning_line(request["unlearning"]["advanced"]),
        "seconds": {k: dict(v) for k, v in sampler.seconds.items()},
        "peak": dict(sampler.peak),
        "bytes": {k: dict(v) for k, v in sampler.bytes.items()},
        "cache": size(tmp / "cache"),
    }


def unlearning_line(train: dict) -> str:
    """What the unlearning ran as: preset and optimizer, and which bitsandbytes ran 8-bit Adam."""
    from sd_memory import bnb_version

    optimizer = f"8-bit Adam ({bnb_version()})" if train["optimizer"] == "adam8bit" else train["optimizer"]
    return f"Unlearning: {train['params']['preset']} preset, {optimizer}, {train['mixed_precision']}."


def report(found: dict, device: str) -> str:
    kinds = ["compute", *(label for label, _ in OUTSIDE), "other"]
    steps = [s for s in ("outside the steps", *STEPS) if s in found["seconds"]]
    stores = ["ZenML artifact store", "MLflow artifact store", "scratch (peak)"]
    lines = [
        "| step | wall s | compute s | outside compute s | "
        + " | ".join(f"{k} s" for k in kinds[1:])
        + " | peak RSS GiB | "
        + " | ".join(f"{k} MB" for k in stores)
        + " |",
        "|---|" + "---:|" * (3 + len(kinds) + len(stores)),
    ]
    total = defaultdict(float)
    for step in steps:
        sec = found["seconds"][step]
        wall, compute = sum(sec.values()), sec.get("compute", 0.0)
        total["wall"] += wall
        total["compute"] += compute
        written = found["bytes"].get(step, {})
        lines.append(
            f"| {step} | {wall:.0f} | {compute:.0f} | {wall - compute:.0f} | "
            + " | ".join(f"{sec.get(k, 0.0):.1f}" for k in kinds[1:])
            + f" | {found['peak'][step] / GIB:.2f} | "
            + " | ".join(f"{written.get(k, 0) / 1e6:,.1f}" for k in stores)
            + " |"
        )
    outside = total["wall"] - total["compute"]
    peak = max(found["peak"].values())
    stored = found["stored"]
    byte_lines = ["| bytes | |", "|---|---:|"] + [f"| {k} | {v:,.0f} |" for k, v in stored.items() if k != "ratio"]
    return "\n".join(
        [
            f"Random-weight SD 1.5 pipeline folder, {found['pipeline GiB']:.2f} GiB (fp32), built in "
            f"{found['build seconds']:.0f} s (not counted). The request is `configs/request_sd_nudity.yaml` at "
            f"benchmark size (benchmarks/sd_scale.py), device `{device}`. "
            "Random weights: every quality figure is meaningless.",
            *(f"Changed on this device: {c}." for c in found["changed"]),
            found["unlearning"],
            "",
            *lines,
            "",
            f"Exit {found['exit']} in {found['wall']:.0f} s. Seconds outside compute: {outside:.0f} of "
            f"{total['wall']:.0f} s sampled, **{outside / total['wall']:.1%}** (target at most 10 %). Peak resident "
            f"memory **{peak / GIB:.2f} GiB** (target under 24 GB). Local model cache after the run: "
            f"{found['cache'] / 1e9:.2f} GB.",
            "",
            "Bytes the request left in the stores against what it must keep (the version's added bytes in the "
            "registry, the evaluation images, the reports; benchmarks/request_bytes.py counts the same way):",
            "",
            *byte_lines,
            "",
            f"Bytes across the stores / bytes kept: **{stored['ratio']:.3f}x** (target at most 1.1x).",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--publish", action="store_true", help="write docs/results/sd-scale.md")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    sys.path.insert(0, str(ROOT))
    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the pipeline picks the GPU when it sees one
    import torch
    from results_page import publish

    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda, but torch sees no GPU on this node")
    with tempfile.TemporaryDirectory(prefix="sd-scale-") as tmp:
        found = run(Path(tmp), args.device)
    publish(
        ROOT / "benchmarks" / "results",
        "sd-scale",
        report(found, args.device),
        found,
        "sd-scale" if args.publish else None,
        "SD 1.5 request end to end",
    )


if __name__ == "__main__":
    main()
