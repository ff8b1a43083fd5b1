"""Bytes and seconds that moving model folders between the pipeline's steps costs at Stable Diffusion 1.5 size:
ZenML's default `Path` materializer (before) against references and registry parts (now:
`mlflow_adapters/step_folders.py`).

A random-weight SD 1.5 pipeline folder is built from the published configurations (UNet 860M, VAE, CLIP ViT-L/14
text encoder, a word tokenizer made locally; fp32, as `save_pretrained` writes it), and an "unlearned" copy in
which every tensor of the noxattn preset (the shipped SD setting) changed, as an erasure changes every tensor it
trains. No EraseDiff compute runs: this is the storage path alone, step by step as the pipeline runs it, with real
ZenML and MLflow stores (local artifact store, SQLite registry):

- before: `load_base_model` returns the base folder (tar.gz into ZenML's artifact store), which `curate_sets`,
  `unlearn_model` and `evaluate_models` each load (extract); `unlearn_model` returns the unlearned folder, which
  `evaluate_models`, `promote` and `report` each load; `promote` stores its parts in the registry.
- now: the base as a reference, resolved three times; the unlearned model's parts stored once in the registry's
  part store, its manifest resolved three times (the local cache, checked against every file's hash at each use);
  `promote` packs it again (finding every part stored).

    python benchmarks/sd_step_artifacts.py [--publish]
"""

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def size(folder: Path) -> int:
    return sum(p.stat().st_size for p in Path(folder).rglob("*") if p.is_file()) if Path(folder).exists() else 0


def unlearned_copy(base: Path, out: Path) -> Path:
    """The base with every noxattn tensor of the UNet changed (the folder an erasure with that preset writes)."""
    import torch
    from diffusers import UNet2DConditionModel
    from safetensors.torch import load_file, save_file
    from sd_shapes import SD15_UNET

    from erasediff.method.params import select_parameters

    shutil.copytree(base, out)
    unet_file = out / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(unet_file)

    with torch.device("meta"):
        names = set(select_parameters(UNet2DConditionModel(**SD15_UNET), "noxattn"))
    for name in names:
        state[name] = state[name] + 1e-3
    save_file(state, unet_file, metadata={"format": "pt"})
    return out


def timed(times: dict, name: str, fn, *args):
    started = time.perf_counter()
    out = fn(*args)
    times[name] = times.get(name, 0.0) + time.perf_counter() - started
    return out


def before(base: Path, unlearned: Path) -> dict:
    """ZenML's PathMaterializer between steps; promotion packs the unlearned model into the registry."""
    import mlflow
    from mlflow.tracking import MlflowClient
    from zenml.client import Client
    from zenml.materializers.path_materializer import PathMaterializer

    from erasediff.storage.parts import pack
    from mlflow_adapters.blob_store import RunBlobs, parts_run

    store = Client().active_stack.artifact_store
    times: dict[str, float] = {}
    left = 0  # PathMaterializer.load extracts into a temp folder it never deletes: counted, then removed here
    for name, folder, readers in (("base", base, 3), ("unlearned", unlearned, 3)):
        uri = os.path.join(store.path, "bench", name)
        os.makedirs(uri)  # ZenML makes an output's folder before its materializer saves
        materializer = PathMaterializer(uri=uri, artifact_store=store)
        timed(times, f"save {name} (tar.gz into the artifact store)", materializer.save, folder)
        for _ in range(readers):
            loaded = timed(times, f"load {name} x{readers} (extract)", materializer.load, Path)
            left += size(loaded)
            shutil.rmtree(loaded)
    client = MlflowClient()
    with mlflow.start_run() as run:
        blobs = RunBlobs(client, parts_run(client, "sd-bench", run.info.experiment_id))
        _, added = timed(times, "promote: parts into the registry", pack, unlearned, blobs)
        timed(times, "promote: parts into the registry", blobs.flush)
    return {"times": times, "version adds": added, "zenml": size(store.path), "scratch": left}


def now(base: Path, unlearned: Path) -> dict:
    """References between steps; the unlearned model's parts stored once by the unlearn step."""
    import mlflow
    from mlflow.tracking import MlflowClient

    from erasediff.storage.parts import pack
    from erasediff.util.hashing import folder_hash
    from mlflow_adapters.blob_store import RunBlobs, parts_run
    from mlflow_adapters.step_folders import reference, resolve, stored

    times: dict[str, float] = {}
    client = MlflowClient()
    with mlflow.start_run() as run:
        sha = timed(times, "hash base (load_base_model)", folder_hash, base)
        ref = timed(times, "save base (reference)", reference, base, sha, str(base))
        for _ in range(3):
            timed(times, "load base x3 (check sizes and times)", resolve, ref)
        working = Path(tempfile.mkdtemp(prefix="unlearned-")) / "unlearned"
        shutil.copytree(unlearned, working)  # the unlearn step's output folder, moved into the cache by `stored`
        manifest, added = timed(times, "save unlearned (parts into the registry)", stored, working, "sd-bench", "r", "")
        for _ in range(3):
            timed(times, "load unlearned x3 (cache, every file's hash checked)", resolve, manifest)
        blobs = RunBlobs(client, parts_run(client, "sd-bench", run.info.experiment_id))
        _, promoted = timed(times, "promote: parts into the registry", pack, resolve(manifest), blobs)
        timed(times, "promote: parts into the registry", blobs.flush)
    return {"times": times, "version adds": added + promoted, "zenml": size(ref) + size(manifest), "scratch": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--publish", action="store_true", help="write docs/results/sd-step-artifacts.md")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).parent))
    with tempfile.TemporaryDirectory(prefix="sd-artifacts-") as tmp:
        tmp = Path(tmp)
        os.environ.update(
            ZENML_CONFIG_PATH=str(tmp / "zenml"), ERASEDIFF_CACHE=str(tmp / "cache"), TMPDIR=str(tmp / "scratch")
        )
        (tmp / "scratch").mkdir()
        tempfile.tempdir = str(tmp / "scratch")
        import mlflow
        from results_page import publish

        from mlflow_adapters.store import artifacts_beside, open_experiment

        uri = f"sqlite:///{tmp / 'before.db'}"
        mlflow.set_tracking_uri(uri)
        open_experiment(uri, "bench", artifacts_beside(uri))  # artifacts in tmp, never ./mlruns
        mlflow.set_experiment("bench")
        from sd_shapes import build_sd15

        base = build_sd15(tmp / "models" / "sd15")
        unlearned = unlearned_copy(base, tmp / "models" / "unlearned")
        old = before(base, unlearned)
        for stale in (tmp / "zenml" / "local_stores", tmp / "mlartifacts"):
            shutil.rmtree(stale, ignore_errors=True)  # disk: the next path starts from empty stores
        uri = f"sqlite:///{tmp / 'now.db'}"
        mlflow.set_tracking_uri(uri)
        open_experiment(uri, "bench", artifacts_beside(uri))  # artifacts in tmp, never ./mlruns
        mlflow.set_experiment("bench")
        new = now(base, unlearned)
        new["cache"] = size(tmp / "cache" / "materialized")
        pipeline_bytes = size(base)
        rows = [{"path": "before", **old}, {"path": "now", **new}]
        report = "\n".join(
            [
                f"SD 1.5 pipeline folder (random weights, fp32): {pipeline_bytes / 2**30:.2f} GiB; the unlearned copy "
                "changes every noxattn tensor of the UNet. Seconds per operation of the storage path:",
                "",
                "| operation | before s | now s |",
                "|---|---:|---:|",
                *[
                    f"| {k} | {old['times'].get(k, 0):.1f} | {new['times'].get(k, 0):.1f} |"
                    for k in dict.fromkeys([*old["times"], *new["times"]])
                ],
                f"| total | {sum(old['times'].values()):.1f} | {sum(new['times'].values()):.1f} |",
                "",
                "| bytes | before | now |",
                "|---|---:|---:|",
                f"| ZenML artifact store (model folders) | {old['zenml']:,} | {new['zenml']:,} |",
                f"| registry: the version adds | {old['version adds']:,} | {new['version adds']:,} |",
                f"| left in the steps' temp folders | {old['scratch']:,} | {new['scratch']:,} |",
                f"| local model cache (reusable) | 0 | {new['cache']:,} |",
                "",
                f"Model-folder bytes across ZenML and the registry per bytes the version adds: before "
                f"{(old['zenml'] + old['version adds']) / old['version adds']:.2f}x, now "
                f"{(new['zenml'] + new['version adds']) / new['version adds']:.3f}x.",
            ]
        )
        publish(
            ROOT / "benchmarks" / "results",
            "sd-step-artifacts",
            report,
            rows,
            "sd-step-artifacts" if args.publish else None,
            "SD 1.5 model folders between steps",
        )


if __name__ == "__main__":
    main()
