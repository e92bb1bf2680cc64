"""The router: the one door from the sources into the actors.

It turns a judged payload into an envelope for the device's actor (spawned on demand
by the registry) and dead letters for what was rejected, and counts both. The receipt
it is given settles once every part is committed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import trio

from sensorium.actors._envelope import Envelope
from sensorium.actors._receipt import Receipt
from sensorium.actors._writer import Writer, WriteRequest
from sensorium.engine import ActorRegistry, MailboxFull
from sensorium.logs import get_logger
from sensorium.storage import DeadLetterRow

__all__ = ["Rejected", "Router"]

log = get_logger(__name__)

# Raw bytes kept per dead letter: enough to see what was wrong, bounded.
DEAD_LETTER_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Rejected:
    index: int | None
    reason: str
    detail: str


class Router:
    def __init__(self, registry: ActorRegistry[int, Envelope, object], writer: Writer) -> None:
        self._registry = registry
        self._writer = writer
        self.rejections: Counter[str] = Counter()
        self.accepted_messages: Counter[str] = Counter()

    def _dead_letter(
        self,
        *,
        source: str,
        tenant_id: int | None,
        device_id: str | None,
        topic: str | None,
        rejections: Sequence[Rejected],
        raw: bytes,
        receipt: Receipt,
    ) -> WriteRequest:
        """The dead letter of a message (and its receipt, settled once it commits)."""
        for rejection in rejections:
            self.rejections[rejection.reason] += 1
        first = rejections[0]
        detail = "; ".join(
            (f"[{r.index}] " if r.index is not None else "") + r.detail for r in rejections
        )
        return WriteRequest(
            dead_letter=DeadLetterRow(
                source=source,
                tenant_id=tenant_id,
                device_id=device_id,
                topic=topic,
                reason=first.reason if len({r.reason for r in rejections}) == 1 else "several",
                detail=detail[:2000],
                payload=raw[:DEAD_LETTER_BYTES],
                payload_size=len(raw),
            ),
            receipts=(receipt,),
        )

    async def reject(
        self,
        *,
        source: str,
        tenant_id: int | None,
        device_id: str | None,
        topic: str | None,
        rejections: Sequence[Rejected],
        raw: bytes,
        receipt: Receipt,
    ) -> None:
        """Keep a message nobody will store as a dead letter; settle after commit."""
        await self._writer.submit(
            self._dead_letter(
                source=source,
                tenant_id=tenant_id,
                device_id=device_id,
                topic=topic,
                rejections=rejections,
                raw=raw,
                receipt=receipt,
            )
        )

    def _dead_letter_of(self, envelope: Envelope, rejections: Sequence[Rejected]) -> WriteRequest:
        return self._dead_letter(
            source=envelope.source,
            tenant_id=envelope.tenant_id,
            device_id=envelope.device_id,
            topic=envelope.topic,
            rejections=rejections,
            raw=envelope.raw,
            receipt=envelope.receipt,
        )

    def _split(
        self, envelope: Envelope, rejections: Sequence[Rejected]
    ) -> tuple[Envelope | None, WriteRequest | None]:
        """The part for the device actor (valid items) and the dead letter (the rest)."""
        dead = self._dead_letter_of(envelope, rejections) if rejections else None
        if not envelope.items:
            return None, dead
        self.accepted_messages[envelope.source] += 1
        return envelope, dead

    async def route(self, envelope: Envelope, *, rejections: Sequence[Rejected] = ()) -> None:
        """Hand a message to its device actor; waits while the mailbox is full. The
        receipt must count one part for the items and one for the rejections."""
        valid, dead = self._split(envelope, rejections)
        if dead is not None:
            await self._writer.submit(dead)
        if valid is not None:
            await self._registry.send(valid.device_key, valid)

    def route_nowait(self, envelope: Envelope, *, rejections: Sequence[Rejected] = ()) -> None:
        """Like `route`, but raises `MailboxFull` instead of waiting (the HTTP edge),
        also when the writer's queue is full: then every mailbox is about to be."""
        if self._writer.saturated:
            raise MailboxFull("the writer's queue is full")
        valid, dead = self._split(envelope, rejections)
        if dead is not None:
            try:
                self._writer.submit_nowait(dead)
            except trio.WouldBlock:
                raise MailboxFull("the writer's queue is full") from None
        if valid is not None:
            self._registry.send_nowait(valid.device_key, valid)

    def undeliverable(self, key: int, envelope: Envelope, exc: BaseException) -> None:
        """A message that crashes its actor: a dead letter, then its receipt settles.

        If even the writer's queue is full, the receipt stays open: the broker
        redelivers the message later (never acknowledged, never lost)."""
        log.error(
            "message crashed its device actor",
            device_id=envelope.device_id,
            error=f"{type(exc).__name__}: {exc}",
        )
        request = self._dead_letter_of(
            envelope, [Rejected(None, "actor-crash", f"{type(exc).__name__}: {exc}")]
        )
        try:
            self._writer.submit_nowait(request)
        except trio.WouldBlock:
            log.error(
                "writer queue full; crashed message left unacknowledged",
                device_id=envelope.device_id,
            )
