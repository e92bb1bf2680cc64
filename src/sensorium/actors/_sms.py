"""SMS notifications through Twilio's Messages API with its SDK.

The SDK blocks: each delivery runs in a worker thread, a few at a time. ``base_url``
points it elsewhere (a stand-in speaking the same API in tests). Twilio's answers map
like any HTTP answer: 429 and 5xx are tried again (after Retry-After when given),
another 4xx (a malformed number, say) fails for good.
"""

from __future__ import annotations

import json

import trio
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from sensorium.actors._notifier import Outcome, outcome_of_status
from sensorium.storage import Notification

__all__ = ["TwilioSender", "sms_text"]


def sms_text(notification: Notification) -> str:
    """One short message: the state, the rule, the device and the value."""
    payload = json.loads(notification.payload)
    rule = payload["rule"]
    value = "no data" if payload["value"] is None else payload["value"]
    state = "ALERT" if payload["state"] == "open" else "resolved"
    return f"{state} [{rule['severity']}] {rule['name']}: {payload['device_id']} {value}"[:300]


class TwilioSender:
    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        *,
        sender: str,
        base_url: str,
        concurrency: int = 4,
    ) -> None:
        self._client = Client(account_sid, auth_token)
        self._client.api.base_url = base_url.rstrip("/")
        self._sender = sender
        self._limiter = trio.CapacityLimiter(concurrency)

    def _send(self, notification: Notification) -> None:
        self._client.messages.create(
            to=notification.recipient, from_=self._sender, body=sms_text(notification)
        )

    async def __call__(self, notification: Notification) -> Outcome:
        try:
            await trio.to_thread.run_sync(self._send, notification, limiter=self._limiter)
        except TwilioRestException as exc:
            return outcome_of_status(exc.status)
        except OSError as exc:
            return Outcome("retry", f"{type(exc).__name__}: {exc}")
        return Outcome("sent")
