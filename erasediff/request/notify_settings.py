"""A request's `notify:` block: who hears about the request, and on which events.

The webhook's URL is read from an environment variable named here, never written in the request: a chat webhook URL
is a credential (it carries its token), and the request is stored with every run.
"""

from typing import Literal

from pydantic import Field

from erasediff.util.config import Strict

Event = Literal["awaiting_approval", "gated_out", "failed", "promoted", "approved", "rejected", "rolled_back"]
EVENTS: tuple[str, ...] = Event.__args__


class NotifySettings(Strict):
    webhook_env: str = Field(
        pattern=r"^[A-Z_][A-Z0-9_]*$",
        description="environment variable that holds the webhook URL (JSON POST; Slack-style `text` included)",
    )
    events: list[Event] = Field(list(EVENTS), min_length=1, description="which events are sent (default: all)")
