"""A request's `notify:` block: who hears about the request, and on which events.

Two channels, either or both: a webhook, whose URL is read from an environment variable named here and never written
in the request (a chat webhook URL is a credential: it carries its token, and the request is stored with every run);
and a ZenML alerter component by name (Slack, Discord or any alerter flavor registered in the ZenML store), whose
credentials stay in ZenML's secrets.
"""

from typing import Literal

from pydantic import Field, model_validator

from erasediff.util.config import Strict

Event = Literal["awaiting_approval", "gated_out", "failed", "promoted", "approved", "rejected", "rolled_back"]
EVENTS: tuple[str, ...] = Event.__args__


class NotifySettings(Strict):
    webhook_env: str | None = Field(
        None,
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable that holds the webhook URL (JSON POST; Slack-style `text` included)",
    )
    alerter: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="name of a ZenML alerter component (`zenml alerter register NAME --flavor slack ...`)",
    )
    events: list[Event] = Field(list(EVENTS), min_length=1, description="which events are sent (default: all)")

    @model_validator(mode="after")
    def _a_channel(self) -> "NotifySettings":
        if self.webhook_env is None and self.alerter is None:
            raise ValueError("names no channel: give webhook_env, alerter, or both")
        return self
