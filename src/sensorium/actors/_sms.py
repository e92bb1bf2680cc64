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


_STATES = {"open": "ALERT", "resolved": "resolved", "flapping": "FLAPPING"}
_MAX_CHARS = 300  # two SMS segments at most


def sms_text(notification: Notification) -> str:
    """One short message: the state, the rule, the device and the value; for a digest,
    the counts and as many devices as fit."""
    payload = json.loads(notification.payload)
    if payload.get("digest"):
        items = payload["items"]
        opened = sum(1 for item in items if item["state"] != "resolved")
        text = (
            f"{payload['count']} alerts: {opened} open/flapping, {len(items) - opened} resolved. "
        )
        devices = ", ".join(sorted({item["device_id"] for item in items}))
        return (text + devices)[:_MAX_CHARS]
    rule = payload["rule"]
    value = "no data" if payload["value"] is None else payload["value"]
    state = _STATES.get(payload["state"], payload["state"])
    return f"{state} [{rule['severity']}] {rule['name']}: {payload['device_id']} {value}"[
        :_MAX_CHARS
    ]


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
