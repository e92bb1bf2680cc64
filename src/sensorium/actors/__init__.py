"""The domain actors: router, device actors, writer; alert rules, their evaluation, the
alert actor and the notifiers."""

from sensorium.actors._alert_rules import (
    Condition,
    NoDataCondition,
    QuietHours,
    RateCondition,
    ThresholdCondition,
    Transition,
    new_state,
)
from sensorium.actors._device import DeviceContext, DeviceState, PoisonPill, device_behavior
from sensorium.actors._email import SendgridSender, SmtpOptions, SmtpSender
from sensorium.actors._envelope import Envelope, Telemetry
from sensorium.actors._notifier import (
    Delivery,
    Notifier,
    NotifierOptions,
    Outcome,
    RecipientRate,
    WebhookSender,
    outcome_of_status,
    sign_webhook,
)
from sensorium.actors._pipeline import IngestPipeline, PipelineOptions
from sensorium.actors._receipt import Receipt
from sensorium.actors._router import Rejected, Router
from sensorium.actors._sms import TwilioSender
from sensorium.actors._writer import Writer, WriteRequest, WriterStatistics

__all__ = [
    "Condition",
    "Delivery",
    "DeviceContext",
    "DeviceState",
    "Envelope",
    "IngestPipeline",
    "NoDataCondition",
    "Notifier",
    "NotifierOptions",
    "Outcome",
    "PipelineOptions",
    "PoisonPill",
    "QuietHours",
    "RateCondition",
    "Receipt",
    "RecipientRate",
    "Rejected",
    "Router",
    "SendgridSender",
    "SmtpOptions",
    "SmtpSender",
    "Telemetry",
    "ThresholdCondition",
    "Transition",
    "TwilioSender",
    "WebhookSender",
    "WriteRequest",
    "Writer",
    "WriterStatistics",
    "device_behavior",
    "new_state",
    "outcome_of_status",
    "sign_webhook",
]
