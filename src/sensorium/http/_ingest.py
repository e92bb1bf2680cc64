"""``POST /api/v1/telemetry``: a device sends readings with its token as Bearer.

The answer comes after commit: ``200 {"accepted", "duplicates", "rejected": [{"index",
"reason"}]}``. A payload that is bad as a whole is a 400 problem+json naming the field
(and a dead letter); an unknown token a 401; full mailboxes a 429 with Retry-After.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
import trio
from quart import Blueprint, Response, jsonify, request
from quart_schema import document_response

from sensorium.actors import Envelope, IngestPipeline, Receipt, Rejected
from sensorium.engine import MailboxClosed, MailboxFull
from sensorium.http._guard import bearer_token, rate_limited, unauthorized
from sensorium.http._limits import TokenBuckets
from sensorium.http._problem import problem
from sensorium.http._schemas import IngestReceipt
from sensorium.sources import Limits, decode_payload
from sensorium.storage import hash_token

__all__ = ["IngestOptions", "ingest_blueprint"]


@dataclass(frozen=True, slots=True)
class IngestOptions:
    limits: Limits
    ack_timeout_s: float = 30.0
    lookup_timeout_s: float = 5.0
    requests_per_device_per_s: float | None = None  # None: no limit


def _unauthorized(detail: str) -> Response:
    return unauthorized(detail, realm="sensorium-devices")


def _overloaded() -> Response:
    return problem(
        429,
        "Too Many Requests",
        kind="overloaded",
        detail="the engine is at capacity; retry later",
        headers={"Retry-After": "1"},
    )


def ingest_blueprint(pipeline: IngestPipeline, options: IngestOptions) -> Blueprint:
    bp = Blueprint("ingest", __name__)
    limits = options.limits
    per_device = (
        TokenBuckets(options.requests_per_device_per_s, burst=2 * options.requests_per_device_per_s)
        if options.requests_per_device_per_s
        else None
    )

    @bp.post("/api/v1/telemetry")
    @document_response(IngestReceipt)
    async def telemetry() -> Response:
        token = bearer_token()
        if token is None:
            return _unauthorized("send the device token as 'Authorization: Bearer <token>'")
        try:
            with trio.fail_after(options.lookup_timeout_s):
                device = await pipeline.directory.by_token_hash(hash_token(token))
        except Exception:  # the database is away (trio.TooSlowError included)
            return problem(
                503,
                "Service Unavailable",
                kind="database-unavailable",
                detail="cannot check the device token right now",
                headers={"Retry-After": "5"},
            )
        if device is None:
            return _unauthorized("unknown device token")
        structlog.contextvars.bind_contextvars(device_id=device.id, tenant_id=device.tenant_id)
        wait = per_device.take(device.key) if per_device is not None else None
        if wait is not None:
            return rate_limited(wait, "device")
        if (request.content_length or 0) > limits.max_payload_bytes:
            return problem(
                413,
                "Payload Too Large",
                kind="oversize",
                detail=f"the limit is {limits.max_payload_bytes} bytes",
            )
        raw = await request.get_data(cache=False)
        assert isinstance(raw, bytes)
        decoded = decode_payload(raw, now_us=time.time_ns() // 1000, limits=limits)
        rejections = [Rejected(r.index, r.reason, r.detail) for r in decoded.rejected]
        whole = rejections[0] if rejections and rejections[0].index is None else None
        single = raw.lstrip()[:1] != b"["
        committed = trio.Event()
        receipt = Receipt(
            lambda _: committed.set(), parts=int(bool(decoded.items)) + int(bool(rejections))
        )
        try:
            items = decoded.items
            pipeline.router.route_nowait(
                Envelope(device.key, device.tenant_id, device.id, "http", items, receipt, raw),
                rejections=rejections,
            )
        except (MailboxFull, MailboxClosed):
            return _overloaded()
        with trio.move_on_after(options.ack_timeout_s):
            await committed.wait()
        if not committed.is_set():
            return problem(
                503,
                "Service Unavailable",
                kind="commit-timeout",
                detail="the readings were not committed in time; send them again",
                headers={"Retry-After": "5"},
            )
        if whole is not None or (single and rejections):
            first = whole or rejections[0]
            return problem(
                400,
                "Bad Request",
                kind=f"invalid-telemetry/{first.reason}",
                detail=first.detail,
                reason=first.reason,
            )
        return jsonify(
            {
                "accepted": receipt.accepted,
                "duplicates": receipt.duplicates,
                "rejected": [
                    {"index": r.index, "reason": r.reason, "detail": r.detail} for r in rejections
                ],
            }
        )

    return bp
