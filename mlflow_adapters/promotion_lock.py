"""One promotion at a time per registered model, on whatever MLflow store the request uses (SQLite or a server).

The lock is a registered model named `<model>.promotion-lock`: creating a registered model is atomic in MLflow's
store (a second create fails with RESOURCE_ALREADY_EXISTS), so it works across processes and machines without
anything beside the tracking server. It is deleted on release; a lock older than `STALE_AFTER_S` (its holder
died mid-promotion) is broken.
"""

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError

LOCK_SUFFIX = ".promotion-lock"
STALE_AFTER_S = 1800.0


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


@contextmanager
def promotion_lock(client: MlflowClient, model_name: str, holder: str, wait_s: float = 600.0) -> Iterator[None]:
    """Hold the promotion lock of `model_name` (waiting up to `wait_s` seconds for another promotion to finish)."""
    name, deadline = lock_name(model_name), time.monotonic() + wait_s
    while True:
        try:
            client.create_registered_model(
                name,
                tags={
                    "holder": holder,
                    "host": socket.gethostname(),
                    "pid": str(os.getpid()),
                    "acquired": f"{time.time():.3f}",
                },
                description=f"held while {holder} is promoted into {model_name}; deleted when done",
            )
            break
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        try:
            held = client.get_registered_model(name)
        except MlflowException:
            continue  # released in between: try again at once
        if time.time() - float(held.tags.get("acquired", "0")) > STALE_AFTER_S:
            client.delete_registered_model(name)
            continue
        if time.monotonic() > deadline:
            raise ErasediffError(
                f"promotion into {model_name} is locked by {held.tags.get('holder', '?')} for more than {wait_s:.0f} "
                "s; "
                "run the request again later"
            )
        time.sleep(0.5)
    try:
        yield
    finally:
        client.delete_registered_model(name)
