"""Model parts in the MLflow store, stored once per registered model, and the complete folders they rebuild.

A registered version's `diffusers` artifact holds a part manifest (`erasediff/storage/parts.py`) instead of the
weights. The parts live as artifacts `parts/<sha256>` of one run per registered model, tagged
`erasediff.parts_of`, created in the promoting request's experiment and shared by every later version. Promotions
of a model hold its promotion lock, so that run is found or made once. Loading rebuilds the folder, byte for byte
and checked against every file's sha256, into the local cache, keyed by the files' hashes; a cached folder is
checked again at every use.
"""

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.storage.parts import PARTS_FILE, FolderBlobs, unpack
from erasediff.util.cache import default_cache_root
from erasediff.util.errors import ModelLoadError
from erasediff.util.hashing import file_hash
from erasediff.util.locks import file_lock
from erasediff.util.workdir import scratch_dir

PARTS_TAG, PARTS_PATH = "erasediff.parts_of", "parts"
BAR_SETTING = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"


@contextmanager
def _no_download_bar() -> Iterator[None]:
    """MLflow draws a bar per download call, one per part; `unpack` draws one bar for the whole folder instead."""
    before = os.environ.get(BAR_SETTING)
    os.environ[BAR_SETTING] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(BAR_SETTING, None)
        else:
            os.environ[BAR_SETTING] = before


class RunBlobs:
    """Parts as artifacts of one MLflow run; `put` stages them and `flush` logs the new ones in one call."""

    def __init__(self, client: MlflowClient, run_id: str) -> None:
        self.client, self.run_id = client, run_id
        self.known: set[str] | None = None
        self.staged = FolderBlobs(scratch_dir("parts-"))
        self.cache = FolderBlobs(default_cache_root() / "parts")

    def has(self, sha: str) -> bool:
        if self.known is None:
            self.known = {Path(f.path).name for f in self.client.list_artifacts(self.run_id, PARTS_PATH)}
        return sha in self.known or self.staged.has(sha)

    def put(self, sha: str, data: bytes) -> None:
        self.staged.put(sha, data)

    def flush(self) -> None:
        """Log the staged parts, then drop the staging folder (a failure leaves the version unregistered, never
        half-stored)."""
        try:
            if any(self.staged.root.iterdir()):
                self.client.log_artifacts(self.run_id, str(self.staged.root), PARTS_PATH)
        finally:
            shutil.rmtree(self.staged.root, ignore_errors=True)

    def get(self, sha: str) -> bytes:
        if self.cache.has(sha) and hashlib.sha256(self.cache.get(sha)).hexdigest() != sha:
            (self.cache.root / sha).unlink()  # a changed cached part is fetched again, never served
        if not self.cache.has(sha):
            folder = scratch_dir("part-")
            try:
                with _no_download_bar():
                    local = self.client.download_artifacts(self.run_id, f"{PARTS_PATH}/{sha}", str(folder))
                data = Path(local).read_bytes()
                if hashlib.sha256(data).hexdigest() != sha:
                    raise ModelLoadError(f"stored part {sha} of run {self.run_id} is corrupt")
                self.cache.put(sha, data)
            except MlflowException as exc:
                raise ModelLoadError(
                    f"part {sha} is missing from run {self.run_id}: {exc.message.splitlines()[0]}"
                ) from exc
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return self.cache.get(sha)


def parts_run(client: MlflowClient, model_name: str, experiment_id: str) -> str:
    """The run holding `model_name`'s parts, made in `experiment_id` the first time (call under the promotion lock)."""
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(
        experiments,
        filter_string=f"tags.`{PARTS_TAG}` = '{model_name}'",
        max_results=1,
        order_by=["attributes.start_time ASC"],
    )
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, tags={PARTS_TAG: model_name}, run_name=f"parts-{model_name}")
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def materialize(folder: Path, client: MlflowClient | None = None) -> Path:
    """The complete diffusers folder behind a registered artifact: `folder` itself when it holds the files, else the
    folder its part manifest rebuilds (cached; two loaders build it once)."""
    manifest_file = Path(folder) / PARTS_FILE
    if not manifest_file.is_file():
        return Path(folder)
    manifest = json.loads(manifest_file.read_text())
    out = cached_folder(manifest)
    if not intact(out, manifest):
        with file_lock(out.with_suffix(".lock"), "rebuilding a registered model folder", wait_s=600):
            if not intact(out, manifest):
                unpack(manifest, RunBlobs(client or MlflowClient(), manifest["parts_run_id"]), out)
    return out


def cached_folder(manifest: dict) -> Path:
    """Where the folder of `manifest` is rebuilt locally: keyed by its files' paths and hashes, wherever stored."""
    content = json.dumps([[f["path"], f["sha256"]] for f in manifest["files"]]).encode()
    return default_cache_root() / "materialized" / hashlib.sha256(content).hexdigest()[:24]


def intact(out: Path, manifest: dict) -> bool:
    """Whether a cached folder holds exactly the manifest's files, byte for byte (checked at every use: a cache
    edited in place is rebuilt, never served)."""
    if not out.is_dir():
        return False
    files = {p.relative_to(out).as_posix(): p for p in out.rglob("*") if p.is_file()}
    if set(files) != {f["path"] for f in manifest["files"]}:
        return False
    return all(file_hash(files[f["path"]]) == f["sha256"] for f in manifest["files"])
