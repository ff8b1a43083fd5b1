"""How a command ends: 0 done, 1 gated out (and nothing else), 2 anything that went wrong, with one `error:` line."""

import os
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from erasediff.util.errors import ErasediffError

DONE, GATED_OUT, FAILED, INTERRUPTED = 0, 1, 2, 130
DEBUG_ENV = "ERASEDIFF_DEBUG"


def debugging() -> bool:
    """ERASEDIFF_DEBUG=1: show tracebacks and everything third-party libraries print."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


@dataclass
class Outcome:
    code: int = DONE


@contextmanager
def one_error_line() -> Iterator[Outcome]:
    """Whatever goes wrong inside ends in one `error:` line and exit status 2, never Python's 1 (gated out). A project
    error says what to fix; anything else is named by its type, with the traceback under ERASEDIFF_DEBUG=1."""
    outcome = Outcome()
    try:
        yield outcome
    except ErasediffError as exc:
        print(f"error: {exc}", file=sys.stderr)
        outcome.code = FAILED
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        outcome.code = INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the exit status must not be Python's 1
        if debugging():
            traceback.print_exc()
        detail = " ".join(str(exc).split())[:300]
        if getattr(exc, "error_code", None) == "PERMISSION_DENIED":  # an MLflow server's 403, wherever it came from
            user = os.environ.get("MLFLOW_TRACKING_USERNAME") or "this client"
            print(
                f"error: the MLflow server refused {user} permission: {detail} (an admin grants permissions: "
                "deploy/mlflow/accounts.py)",
                file=sys.stderr,
            )
            outcome.code = FAILED
            return
        print(
            f"error: unexpected {type(exc).__name__}: {detail} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr
        )
        outcome.code = FAILED
