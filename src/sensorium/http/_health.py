"""Liveness, readiness and metrics: ``/healthz``, ``/readyz``, ``/metrics``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

import trio
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from quart import Blueprint, Response, jsonify

from sensorium.http._problem import problem

__all__ = ["HealthCheck", "health_blueprint"]

# A readiness check answers None when its component is reachable, else why it is not.
HealthCheck = Callable[[], Awaitable[str | None]]


def health_blueprint(
    *,
    checks: Mapping[str, HealthCheck],
    registry: CollectorRegistry,
    check_timeout_s: float = 3.0,
) -> Blueprint:
    bp = Blueprint("health", __name__)

    @bp.get("/healthz")
    async def healthz() -> Response:
        """The process serves requests (liveness)."""
        return jsonify({"status": "ok"})

    @bp.get("/readyz")
    async def readyz() -> Response:
        """Every component ingest depends on is reachable (readiness)."""
        failures: dict[str, str] = {}

        async def run(name: str, check: HealthCheck) -> None:
            with trio.move_on_after(check_timeout_s) as scope:
                error = await check()
                if error is not None:
                    failures[name] = error
            if scope.cancelled_caught:
                failures[name] = f"no answer within {check_timeout_s:.0f} s"

        async with trio.open_nursery() as nursery:
            for name, check in checks.items():
                nursery.start_soon(run, name, check)
        components = {
            name: {
                "ready": name not in failures,
                **({"error": failures[name]} if name in failures else {}),
            }
            for name in checks
        }
        if failures:
            return problem(
                503,
                "Not ready",
                kind="not-ready",
                detail="not reachable: " + ", ".join(sorted(failures)),
                components=components,
            )
        return jsonify({"status": "ready", "components": components})

    @bp.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)

    return bp
