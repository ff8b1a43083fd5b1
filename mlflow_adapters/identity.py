"""Who is acting, as the tracking server knows them: the actor of every registry decision.

On `mlflow server --app-name basic-auth` the user is the one whose credentials (MLFLOW_TRACKING_USERNAME and
MLFLOW_TRACKING_PASSWORD) the server accepted; the server answers its users API for that user only, so a 200 from
it proves the identity. A store without authentication (SQLite, a plain server) knows nobody: every decision made
on it is recorded as `unauthenticated`, whatever name was typed.
"""

import os
from dataclasses import dataclass

from mlflow.exceptions import MlflowException

from erasediff.util.errors import ErasediffError

UNAUTHENTICATED = "unauthenticated"


@dataclass(frozen=True)
class Identity:
    name: str  # the user the server authenticated, or "unauthenticated"
    authenticated: bool

    def recorded(self, claimed: str | None = None) -> str:
        """How the actor reads in the audit log and the report."""
        if self.authenticated:
            return self.name
        return f"{UNAUTHENTICATED} (typed: {claimed})" if claimed else UNAUTHENTICATED


def who_am_i(tracking_uri: str) -> Identity:
    """The identity the tracking store vouches for (raises when it refuses the credentials)."""
    if not tracking_uri.startswith(("http://", "https://")):
        return Identity(UNAUTHENTICATED, False)
    username = os.environ.get("MLFLOW_TRACKING_USERNAME")
    from mlflow.server.auth.client import AuthServiceClient

    try:
        user = AuthServiceClient(tracking_uri).get_user(username or "")
    except MlflowException as exc:
        if exc.error_code == "UNAUTHENTICATED" or "401" in str(exc.message)[:200]:
            who = f"the credentials of {username}" if username else "a client without credentials"
            raise ErasediffError(
                f"the MLflow server at {tracking_uri} requires authentication and refused {who}: set "
                "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD"
            ) from None
        return Identity(UNAUTHENTICATED, False)  # no users API (ENDPOINT_NOT_FOUND): a server without authentication
    return Identity(user.username, True)


def checked_identity(request, tracking_uri: str) -> Identity:
    """Who the tracking store says runs `request` (an ErasureRequest); refused, before anything is computed, when the
    request demands an authenticated store and this one is not."""
    identity = who_am_i(tracking_uri)
    if request.registry.require_authentication and not identity.authenticated:
        raise ErasediffError(
            f"request {request.request.id} sets registry.require_authentication, but the tracking store "
            f"{tracking_uri} does not authenticate its users (use `mlflow server --app-name basic-auth` and its "
            "credentials); nothing was run"
        )
    return identity
