"""A ZenML alerter flavor for the tests: it POSTs what it is asked to post to a URL, here the local receiver.

ZenML's Slack and Discord alerters need their services, which cannot be reached here; this flavor is registered in the
real ZenML store and looked up and called by name exactly as they would be (tests/test_notify.py)."""

import json
import urllib.request

from zenml.alerter.base_alerter import BaseAlerter, BaseAlerterConfig, BaseAlerterFlavor


class WebhookAlerterConfig(BaseAlerterConfig):
    url: str


class WebhookAlerter(BaseAlerter):
    def post(self, message: str, params=None) -> bool:
        body = json.dumps({"alerter": self.name, "text": message}).encode()
        request = urllib.request.Request(self.config.url, body, {"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200


class WebhookAlerterFlavor(BaseAlerterFlavor):
    @property
    def name(self) -> str:
        return "test-webhook"

    @property
    def config_class(self) -> type[WebhookAlerterConfig]:
        return WebhookAlerterConfig

    @property
    def implementation_class(self) -> type[WebhookAlerter]:
        return WebhookAlerter
