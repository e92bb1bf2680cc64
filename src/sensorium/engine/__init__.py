"""The actor runtime on trio: mailboxes, supervision, registry, passivation, shutdown.

It knows nothing about IoT, the web or databases.
"""

from sensorium.engine._actor import Behavior, BehaviorFactory, RestartPolicy
from sensorium.engine._distribution import Distribution
from sensorium.engine._doorbell import Doorbell
from sensorium.engine._errors import ActorEscalation, EngineError, MailboxClosed, MailboxFull
from sensorium.engine._gc import tune_garbage_collector
from sensorium.engine._mailbox import Mailbox, MailboxStatistics
from sensorium.engine._queue import BoundedQueue
from sensorium.engine._registry import ActorRegistry, RegistryStatistics

__all__ = [
    "ActorEscalation",
    "ActorRegistry",
    "Behavior",
    "BehaviorFactory",
    "BoundedQueue",
    "Distribution",
    "Doorbell",
    "EngineError",
    "Mailbox",
    "MailboxClosed",
    "MailboxFull",
    "MailboxStatistics",
    "RegistryStatistics",
    "RestartPolicy",
    "tune_garbage_collector",
]
