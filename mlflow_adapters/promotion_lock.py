"""One promotion at a time per registered model, on whatever MLflow store the request uses (SQLite or a server).

The lock is a registered model that lives as long as the model: free, it is named `<model>.promotion-lock`; held,
it is renamed to `<model>.promotion-lock.held-<token>`. Renaming is atomic in MLflow's store (a rename of a name that
no longer exists fails), so taking, releasing and breaking the lock are each one compare-and-swap:

- take: rename the free name to my held name; only one of several contenders finds the free name;
- release: rename my held name back to the free name; it fails when my lock was broken, so a process that is not
  the holder (it lacks the token) cannot release it;
- break: a waiter that saw the holder's heartbeat (a counter the holder bumps every few seconds, from a thread)
  stand still for `stale_after_s` of the waiter's own clock renames the held name back to free; of two waiters only
  one rename succeeds. No two hosts' clocks are ever compared.

Creating the lock is a compare-and-swap too. Read-then-create is not: a caller that read "no lock" before another
created and took it would create a second free name beside the held one, and two holders. So the lock is created
only by the caller that creates its marker `<model>.promotion-lock.created` (creating a name that exists fails), and
every caller reads the free and held names in one search, one snapshot, in which exactly one of them exists once the
lock was created.

Renaming needs EDIT on the lock model. On a server with authentication the accounts script
(deploy/mlflow/accounts.py) creates the lock model beside the model and grants EDIT to the accounts that may
promote; a user who may only read the model can neither take nor hold its lock. Where the lock model does not exist
yet (a local store, or a first promotion), it is created only by a caller who can edit the model itself.
"""

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError
from mlflow_adapters.audit import now
from mlflow_adapters.permissions import refused

LOCK_SUFFIX = ".promotion-lock"
HELD = ".held-"
CREATED = ".created"  # the marker whose creation entitles one caller to create the lock
KIND_TAG, LOCK_KIND = "erasediff.kind", "promotion-lock"  # hides lock models from `request list`
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0


def lock_name(model_name: str) -> str:
    return f"{model_name}{LOCK_SUFFIX}"


def is_lock_model(name: str, tags: dict[str, str]) -> bool:
    return tags.get(KIND_TAG) == LOCK_KIND or LOCK_SUFFIX in name


@dataclass
class Held:
    """What a waiter sees of the current holder."""

    name: str
    tags: dict[str, str]

    def describe(self, still_s: float) -> str:
        t = self.tags
        return (
            f"request {t.get('holder', '?')} on host {t.get('host', '?')} (process {t.get('pid', '?')}), holding since "
            f"{t.get('since', '?')}; its heartbeat has been still for {still_s:.0f} s"
        )


def _missing(exc: MlflowException) -> bool:
    return exc.error_code == "RESOURCE_DOES_NOT_EXIST"


def _rename(client: MlflowClient, old: str, new: str) -> bool:
    """One compare-and-swap: True when `old` existed and is now `new`."""
    try:
        client.rename_registered_model(old, new)
        return True
    except MlflowException as exc:
        if _missing(exc) or exc.error_code in ("RESOURCE_ALREADY_EXISTS", "INVALID_STATE"):
            return False
        if "0 were matched" in exc.message:  # SQL store: another rename took the row first (rolled back, not taken)
            return False
        raise refused(exc, "take or release the promotion lock of", old.split(LOCK_SUFFIX)[0], "EDIT") from exc
    except Exception:  # noqa: BLE001 - a concurrent rename can surface as a driver error on SQLite
        return False


def _state(client: MlflowClient, model_name: str) -> tuple[bool, Held | None]:
    """Whether the free lock exists, and who holds it: from one search, so that a rename between two reads cannot
    make a held lock look absent."""
    free = lock_name(model_name)
    found = client.search_registered_models(filter_string=f"name LIKE '{free}%'")
    held = [m for m in found if m.name.startswith(f"{free}{HELD}")]
    return any(m.name == free for m in found), Held(held[0].name, dict(held[0].tags)) if held else None


def _create_free_lock(client: MlflowClient, model_name: str) -> None:
    """Create the lock, after proving the caller can edit the model; only the caller that creates the marker does,
    once per store (another caller returns and waits for the lock to appear)."""
    name = lock_name(model_name)
    tags = {KIND_TAG: LOCK_KIND, "model": model_name}
    try:
        try:
            client.create_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        client.set_registered_model_tag(model_name, "erasediff.promotion_lock", name)  # EDIT on the model, or 403
        client.create_registered_model(f"{name}{CREATED}", tags=tags, description=f"the lock of {model_name} exists")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return  # another caller is creating it
        raise refused(exc, "create the promotion lock of", model_name, "EDIT") from exc
    about = f"the promotion lock of {model_name}: renamed while a promotion holds it (erasediff)"
    client.create_registered_model(name, tags=tags, description=about)


def _ensure_free_lock(client: MlflowClient, model_name: str) -> None:
    try:
        free, held = _state(client, model_name)
    except MlflowException as exc:
        raise refused(exc, "read the promotion lock of", model_name, "READ") from exc
    if not free and held is None:
        _create_free_lock(client, model_name)


class _Heartbeat(threading.Thread):
    """Bumps the held lock's `heartbeat` tag so that waiters can tell a live holder from a dead one."""

    def __init__(self, client: MlflowClient, name: str, every_s: float) -> None:
        super().__init__(daemon=True)
        self.client, self.name, self.every_s, self.stop = client, name, every_s, threading.Event()

    def run(self) -> None:
        beat = 0
        while not self.stop.wait(self.every_s):
            beat += 1
            try:
                self.client.set_registered_model_tag(self.name, "heartbeat", str(beat))
            except MlflowException as exc:
                if _missing(exc):  # broken by a waiter (we were too slow): the release will say so
                    return
            except Exception:  # noqa: BLE001, S112 - a busy SQLite store: the next beat tries again
                continue


@contextmanager
def promotion_lock(
    client: MlflowClient,
    model_name: str,
    holder: str,
    wait_s: float = 600.0,
    heartbeat_s: float = HEARTBEAT_S,
    stale_after_s: float = STALE_AFTER_S,
) -> Iterator[str]:
    """Hold the promotion lock of `model_name` (waiting up to `wait_s` seconds for another promotion to finish).
    Yields the holder's token."""
    free, token = lock_name(model_name), uuid.uuid4().hex[:16]
    mine = f"{free}{HELD}{token}"
    _ensure_free_lock(client, model_name)
    deadline, seen, still_since = time.monotonic() + wait_s, None, time.monotonic()
    while not _rename(client, free, mine):
        free_exists, held = _state(client, model_name)
        if held is None:
            if free_exists:
                continue  # released in between: try again at once
            if time.monotonic() > deadline:
                raise ErasediffError(
                    f"the promotion lock of {model_name} was created but is neither free nor held (deleted by hand?); "
                    f"waited {wait_s:.0f} s. To create it again: erasediff unlock {model_name}"
                )
            _ensure_free_lock(client, model_name)
            time.sleep(0.2)
            continue
        beat = (held.name, held.tags.get("heartbeat"))
        if beat != seen:
            seen, still_since = beat, time.monotonic()
        still = time.monotonic() - still_since
        if still > stale_after_s:
            _rename(client, held.name, free)  # break it; of several waiters, one rename wins
            continue
        if time.monotonic() > deadline:
            raise ErasediffError(
                f"promotion into {model_name} is locked by {held.describe(still)}; waited {wait_s:.0f} s. A dead "
                f"holder's lock is taken over {stale_after_s:.0f} s after its heartbeat stops; to clear it now: "
                f"erasediff unlock {model_name}"
            )
        time.sleep(0.2)
    client.set_registered_model_tag(mine, "holder", holder)
    for key, value in {"host": socket.gethostname(), "pid": str(os.getpid()), "since": now()}.items():
        client.set_registered_model_tag(mine, key, value)
    beat = _Heartbeat(MlflowClient(tracking_uri=client.tracking_uri), mine, heartbeat_s)
    beat.start()
    try:
        yield token
    finally:
        beat.stop.set()
        beat.join()
        for key in ("holder", "host", "pid", "since", "heartbeat"):  # the free lock names no holder
            try:
                client.delete_registered_model_tag(mine, key)
            except MlflowException:
                break
        if not release(client, model_name, token):
            raise ErasediffError(
                f"the promotion lock of {model_name} was taken over while {holder} held it (its heartbeat stopped "
                f"for more than {stale_after_s:.0f} s); what was done under it must be checked: erasediff audit "
                f"{model_name} --verify"
            )


def release(client: MlflowClient, model_name: str, token: str, attempts: int = 20) -> bool:
    """Give the lock back: only the holder of `token` can (False: that token does not hold it). A rename that fails
    while the held name still exists failed on a busy store, not to a takeover: it is tried again."""
    name = lock_name(model_name)
    mine = f"{name}{HELD}{token}"
    for attempt in range(attempts):
        if _rename(client, mine, name):
            return True
        try:
            client.get_registered_model(mine)
        except MlflowException as exc:
            if _missing(exc):
                return False  # renamed away by a waiter that took it over
        except Exception:  # noqa: BLE001, S110 - a busy SQLite store: look again after the pause
            pass
        time.sleep(0.1 * (attempt + 1))
    return False


def unlock(client: MlflowClient, model_name: str) -> Held | None:
    """Break the lock whoever holds it (an operator's command, after checking the holder is gone), or create it
    again where it was deleted by hand. Returns what held it."""
    free, held = _state(client, model_name)
    if held is not None and not _rename(client, held.name, lock_name(model_name)):
        raise ErasediffError(f"the promotion lock of {model_name} changed hands while it was being cleared; run again")
    if not free and held is None:
        client.create_registered_model(lock_name(model_name), tags={KIND_TAG: LOCK_KIND, "model": model_name})
    return held
