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
- files a step has logged to the run's MLflow artifacts (the evaluation's results and grids) as the list of their
  hashes: a reader downloads them from the run and checks each, instead of a second copy in ZenML's store.
"""

import json
import shutil
from pathlib import Path

import mlflow
from mlflow.artifacts import download_artifacts
from mlflow.tracking import MlflowClient

from erasediff.storage.parts import PARTS_FILE, pack
from erasediff.util.errors import ErasediffError, ModelLoadError
from erasediff.util.hashing import file_hash, folder_hash
from erasediff.util.locks import file_lock
from erasediff.util.workdir import scratch_dir
from mlflow_adapters.blob_store import RunBlobs, cached_folder, intact, materialize, parts_run
from mlflow_adapters.promotion_lock import promotion_lock
from mlflow_adapters.registry import MODELS_SCHEME, registered_model_folder

REF_FILE = "erasediff_folder_ref.json"
LOGGED_FILE = "erasediff_logged_files.json"
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


def _run_files(client: MlflowClient, run_id: str, path: str) -> list[str]:
    found = []
    for item in client.list_artifacts(run_id, path):
        found += _run_files(client, run_id, item.path) if item.is_dir else [item.path]
    return found


def logged(folder: Path, artifact_path: str) -> Path:
    """A small folder standing for what this step logged to its MLflow run under `artifact_path` from `folder` (laid
    out alike): the run and each file's hash. Files of `folder` it did not log (the evaluation's individual samples)
    end with the step."""
    run_id = mlflow.active_run().info.run_id
    files = {
        name: file_hash(folder / Path(name).relative_to(artifact_path))
        for name in _run_files(MlflowClient(), run_id, artifact_path)
    }
    out = scratch_dir("logged-")
    record = {"run_id": run_id, "artifact_path": artifact_path, "files": files}
    (out / LOGGED_FILE).write_text(json.dumps(record, indent=1))
    return out


def _downloaded(record: dict) -> Path:
    """The logged files of `record`, downloaded from their run, each checked against the hash it was logged with."""
    local = Path(
        download_artifacts(
            run_id=record["run_id"], artifact_path=record["artifact_path"], dst_path=str(scratch_dir("logged-"))
        )
    )
    for name, sha256 in record["files"].items():
        path = local / Path(name).relative_to(record["artifact_path"])
        if not path.is_file() or file_hash(path) != sha256:
            raise ErasediffError(f"run {record['run_id']}'s artifact {name} changed or vanished since it was logged")
    return local


def resolve(artifact: Path) -> Path:
    """The complete folder a step's folder artifact stands for: a reference checked against its record, a part
    manifest rebuilt (cached, checked at every use), logged files downloaded from their run (checked), or the
    artifact itself when it holds the files."""
    if (Path(artifact) / LOGGED_FILE).is_file():
        return _downloaded(json.loads((Path(artifact) / LOGGED_FILE).read_text()))
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
