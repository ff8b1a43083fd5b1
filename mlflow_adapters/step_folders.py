"""Model folders between pipeline steps by reference, not by copy.

ZenML's default `Path` materializer writes every folder a step returns as a `data.tar.gz` into its artifact store
and unpacks it again in every step that reads it: at Stable Diffusion size, gigabytes per step and per run. The
model folders here travel as small folders that name their content instead:

- the base model as a reference: where it is, its content hash and each file's size and modification time. It is
  never copied. A reader checks the files' sizes and times, and re-hashes the whole folder only when they changed;
  a folder whose content changed during the run is refused. On a cluster the base model is a volume mounted at the
  same path in every pod; a `models:/` base missing on a pod is rebuilt there from the registry.
- the unlearned model as a part manifest: its parts stored once, in the part store of the registered model the
  request promotes into (`blob_store.py`), the very parts a promotion registers, so registering adds no weights.
  The producing step leaves the folder in the local cache, where a reader on the same node finds it (checked);
  any other node rebuilds it from the parts.
"""

import json
import shutil
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from erasediff.storage.parts import PARTS_FILE, pack
from erasediff.util.errors import ModelLoadError
from erasediff.util.hashing import folder_hash
from erasediff.util.locks import file_lock
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.blob_store import RunBlobs, cached_folder, intact, materialize, parts_run
from mlflow_adapters.promotion_lock import promotion_lock
from mlflow_adapters.registry import MODELS_SCHEME, registered_model_folder

REF_FILE = "erasediff_folder_ref.json"
STORED_BYTES = (
    "storage.unlearned_bytes_added"  # run metric: the parts the unlearn step added; part of the version's cost
)


def _stat(folder: Path) -> list[list]:
    return [
        [p.relative_to(folder).as_posix(), p.stat().st_size, p.stat().st_mtime_ns]
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    ]


def reference(folder: Path, sha256: str, spec: str) -> Path:
    """A small folder standing for `folder` (whose content hash is `sha256`; `spec` is how the request named it)."""
    folder = Path(folder).resolve()
    out = scratch_dir("reference-")
    record = {"path": str(folder), "sha256": sha256, "spec": spec, "files": _stat(folder)}
    (out / REF_FILE).write_text(json.dumps(record, indent=1))
    return out


def stored(folder: Path, model_name: str, request_id: str, counted: str) -> tuple[Path, int]:
    """Store `folder`'s parts in `model_name`'s part store and leave `folder` in the local cache; returns a folder
    holding only the part manifest, and the bytes the store gained for the files under `counted` (the model that
    will be registered, not the step's other files)."""
    client = MlflowClient()
    with promotion_lock(client, model_name, request_id):  # the model's part store is found or made once
        run_id = parts_run(client, model_name, mlflow.active_run().info.experiment_id)
    blobs = RunBlobs(client, run_id)
    manifest, added = pack(folder, blobs, counted=lambda p: p.is_relative_to(folder / counted))
    blobs.flush()
    manifest["parts_run_id"] = run_id
    cache = cached_folder(manifest)
    cache.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(cache.with_suffix(".lock"), "caching a model folder", wait_s=600):
        if not intact(cache, manifest):
            shutil.rmtree(cache, ignore_errors=True)
            shutil.move(folder, cache)
    out = scratch_dir("stored-")
    (out / PARTS_FILE).write_text(json.dumps(manifest, indent=1))
    return out, added


def resolve(artifact: Path) -> Path:
    """The complete folder a step's folder artifact stands for: a reference checked against its record, a part
    manifest rebuilt (cached, checked at every use), or the artifact itself when it holds the files."""
    ref = Path(artifact) / REF_FILE
    if not ref.is_file():
        return materialize(artifact)
    record = json.loads(ref.read_text())
    folder = Path(record["path"])
    if not folder.is_dir() and record["spec"].startswith(MODELS_SCHEME):
        folder = registered_model_folder(record["spec"])
    if not folder.is_dir():
        raise ModelLoadError(
            f"base model folder {folder} is not on this node: mount it at the same path for every step"
        )
    if _stat(folder) != record["files"] and folder_hash(folder) != record["sha256"]:
        raise ModelLoadError(
            f"base model folder {folder} changed during the run (sha256 {record['sha256']} when it was loaded)"
        )
    return folder
