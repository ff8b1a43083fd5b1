"""The promotion lock under contention, on a real SQLite MLflow registry shared by separate processes.

Three processes take the lock of one model over and over; inside it each appends `enter PID` and `exit PID` to one
file (O_APPEND, one write each), so two holders at once would show as two enters in a row. A holder killed with
SIGKILL stops its heartbeat; a waiter takes its lock over once the heartbeat has been still for `stale_after_s` of
the waiter's own clock. The heartbeat and staleness are shortened here (0.2 s and 5 s) to keep the test short.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from erasediff.util.errors import ErasediffError
from mlflow_adapters.promotion_lock import CREATED, HELD, _create_free_lock, lock_name, promotion_lock, release, unlock

pytestmark = pytest.mark.integration  # three processes on one SQLite store (about a minute)

ROOT = Path(__file__).parents[1]
MODEL = "erasediff-lock-test"
CONTENDER = """
import os, sys, time
from mlflow.tracking import MlflowClient
from mlflow_adapters.promotion_lock import promotion_lock
uri, log, rounds, hold_s, stale_s = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
client = MlflowClient(tracking_uri=uri)
for _ in range(rounds):
    with promotion_lock(client, "MODEL", f"REQ-{os.getpid()}", wait_s=300, heartbeat_s=0.2, stale_after_s=stale_s):
        fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        os.write(fd, f"enter {os.getpid()}\\n".encode())
        time.sleep(hold_s)
        os.write(fd, f"exit {os.getpid()}\\n".encode())
        os.close(fd)
print("done", flush=True)
""".replace("MODEL", MODEL)


def contender(uri: str, log: Path, rounds: int, hold_s: float, stale_s: float = 5.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CONTENDER, uri, str(log), str(rounds), str(hold_s), str(stale_s)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def holders_never_overlap(lines: list[str]) -> None:
    for i in range(0, len(lines), 2):
        enter, leave = lines[i].split(), lines[i + 1].split()
        assert (enter[0], leave[0], enter[1]) == ("enter", "exit", leave[1]), lines[max(0, i - 2) : i + 3]


@pytest.fixture()
def store(tmp_path: Path) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).search_registered_models()  # the schema, once, before the processes race for it
    return uri


def test_three_contending_processes_never_hold_it_together(store: str, tmp_path: Path) -> None:
    log = tmp_path / "holders.log"
    # nobody dies here: a long staleness keeps a busy store's slow writes (a loaded CI host) from reading as a death
    procs = [contender(store, log, rounds=4, hold_s=0.05, stale_s=30.0) for _ in range(3)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-2000:] for o in outs]
    lines = log.read_text().splitlines()
    assert len(lines) == 3 * 4 * 2
    holders_never_overlap(lines)
    assert len({line.split()[1] for line in lines}) == 3  # every process got its turns
    names = [m.name for m in MlflowClient(tracking_uri=store).search_registered_models()]
    assert lock_name(MODEL) in names and not [n for n in names if HELD in n]  # free again, nobody holds it


def test_a_dead_holders_lock_is_taken_over_after_its_heartbeat_stops(store: str, tmp_path: Path) -> None:
    log = tmp_path / "holders.log"
    victim = contender(store, log, rounds=1, hold_s=600)  # holds for ten minutes unless killed
    for _ in range(600):
        if log.is_file() and log.read_text().startswith("enter"):
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"the first holder never entered: {victim.stderr.read() if victim.poll() is not None else ''}")
    client = MlflowClient(tracking_uri=store)
    with pytest.raises(Exception, match=r"locked by request REQ-\d+ on host .* \(process \d+\)"):
        with promotion_lock(client, MODEL, "REQ-impatient", wait_s=1.0, heartbeat_s=0.2, stale_after_s=5.0):
            pass  # a live holder's heartbeat moves: no takeover, and the refusal names the holder
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    started = time.monotonic()
    with promotion_lock(client, MODEL, "REQ-next", wait_s=60, heartbeat_s=0.2, stale_after_s=5.0) as token:
        took = time.monotonic() - started
        assert not release(client, MODEL, "not-the-token")  # a non-holder cannot release it
        assert [m.name for m in client.search_registered_models() if HELD in m.name] == [
            f"{lock_name(MODEL)}{HELD}{token}"
        ]
    assert 5.0 <= took < 40, took  # taken over once the heartbeat was still for stale_after_s, not before
    assert log.read_text().splitlines() == [f"enter {victim.pid}"]  # the dead holder never left its lock


def test_a_caller_that_saw_no_lock_cannot_create_a_second_one_beside_the_holders(store: str) -> None:
    """The race the contention test once lost under load: a caller read "no lock", another created and took it, and
    the first then created the free name beside the held one (two locks, two holders). Creation goes through the
    marker's compare-and-swap, so the late creator creates nothing."""
    client = MlflowClient(tracking_uri=store)
    with promotion_lock(client, MODEL, "REQ-first", wait_s=5.0) as token:
        _create_free_lock(client, MODEL)  # what the late caller does after its stale read
        names = sorted(m.name for m in client.search_registered_models() if m.name.startswith(lock_name(MODEL)))
        assert names == [lock_name(MODEL) + CREATED, f"{lock_name(MODEL)}{HELD}{token}"]
    assert unlock(client, MODEL) is None  # free: nothing to break
    client.delete_registered_model(lock_name(MODEL))  # deleted by hand: waiters say so instead of creating it
    with pytest.raises(ErasediffError, match="neither free nor held .* erasediff unlock"):
        with promotion_lock(client, MODEL, "REQ-late", wait_s=0.5):
            pass
    unlock(client, MODEL)  # the operator's command creates it again
    with promotion_lock(client, MODEL, "REQ-late", wait_s=5.0):
        pass
