"""The MLflow tracking store a request uses, checked before any compute: a scheme this project supports, a
server that answers within seconds, a local database that opens. Each failure is one error line."""

import urllib.error
import urllib.request
from pathlib import Path

from erasediff.request.schema import check_tracking_uri
from erasediff.util.errors import ErasediffError

REACH_TIMEOUT_S = 5.0


def check_reachable(uri: str, timeout: float = REACH_TIMEOUT_S) -> None:
    """A tracking server must answer its health endpoint now (MLflow's own client retries for minutes)."""
    if not uri.startswith(("http://", "https://")):
        return
    try:
        # http(s) only, checked above
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:  # noqa: S310
            response.read(64)
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):  # a server with auth answers: reachable (credentials are checked on first use)
            return
        raise ErasediffError(f"MLflow tracking server {uri} answered {exc.code} on /health") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ErasediffError(f"MLflow tracking server {uri} is not reachable ({reason}); nothing was run") from None


def artifacts_beside(uri: str) -> Path | None:
    """Where a SQLite store's experiments keep artifacts when no request names a place: `mlartifacts` beside the
    database, as in the runner's work folder (MLflow's own default is `./mlruns` in whatever the current directory
    is). None for a server, which has its own artifact root."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    return None


def open_experiment(uri: str, name: str, artifact_root: Path) -> None:
    """Make sure the experiment exists; a local store keeps its artifacts under `artifact_root` (MLflow's default
    would be relative to the current directory). Through a client bound to `uri`: mlflow.set_tracking_uri would
    also set $MLFLOW_TRACKING_URI for the rest of the process, and a later request in the same process would then
    default to this one's store."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        check_tracking_uri(uri)
    except ValueError as exc:
        raise ErasediffError(str(exc)) from None
    check_reachable(uri)
    try:
        client = MlflowClient(tracking_uri=uri)
        if uri.startswith("sqlite:") and client.get_experiment_by_name(name) is None:
            client.create_experiment(name, artifact_location=artifact_root.as_uri())
    except MlflowException as exc:
        raise ErasediffError(
            f"MLflow tracking store {uri} cannot be used: {str(exc.message).splitlines()[0]}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a corrupt SQLite file surfaces as a driver error of any kind
        raise ErasediffError(
            f"MLflow tracking store {uri} cannot be opened: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
