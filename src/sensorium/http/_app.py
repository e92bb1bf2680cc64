"""The quart-trio application: one factory, blueprints added per concern."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence

import structlog
import trio
from prometheus_client import CollectorRegistry
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector
from quart import Blueprint, Response, g, request
from quart_schema import QuartSchema
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from sensorium import __version__
from sensorium.engine import Distribution
from sensorium.http._guard import bad_request
from sensorium.http._health import HealthCheck, health_blueprint
from sensorium.http._problem import problem
from sensorium.logs import get_logger

__all__ = ["create_app"]

log = get_logger(__name__)

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,128}")
# Seconds; an analytics query answers in ~10 ms, an ingest request waits for its commit.
_REQUEST_S_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RouteTimings(Collector):
    """Request durations by method and route template (``/api/v1/devices/<device_id>``,
    never the id itself: a bounded set of labels)."""

    def __init__(self) -> None:
        self.by_route: dict[tuple[str, str], Distribution] = {}

    def observe(self, method: str, route: str, seconds: float) -> None:
        timing = self.by_route.get((method, route))
        if timing is None:
            timing = self.by_route[(method, route)] = Distribution(_REQUEST_S_BOUNDS)
        timing.observe(seconds)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "sensorium_http_request_seconds",
            "HTTP request durations by method and route (from the request's arrival to its "
            "answer).",
            labels=["method", "route"],
        )
        for (method, route), timing in sorted(self.by_route.items()):
            family.add_metric([method, route], timing.cumulative(), timing.sum)
        yield family


def create_app(
    *,
    checks: Mapping[str, HealthCheck],
    registry: CollectorRegistry,
    blueprints: Sequence[Blueprint] = (),
    max_content_length: int = 1024 * 1024,
) -> QuartTrio:
    """The HTTP app; ``checks`` decide readiness, ``registry`` is what /metrics exports."""
    app = QuartTrio("sensorium")
    app.config["SENSORIUM_VERSION"] = __version__
    app.config["MAX_CONTENT_LENGTH"] = max_content_length
    # OpenAPI 3.1 at /openapi.json (and a docs page at /docs), from the pydantic models
    # the routes document.
    QuartSchema(
        app,
        info={"title": "Sensorium", "version": __version__},
        security_schemes={"bearer": {"type": "http", "scheme": "bearer", "bearer_format": "JWT"}},
        redoc_ui_path=None,
        scalar_ui_path=None,
    )
    app.register_blueprint(health_blueprint(checks=checks, registry=registry))
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    timings = RouteTimings()
    registry.register(timings)

    @app.before_request
    async def start_clock() -> None:
        g.started = time.perf_counter()
        # Every log line of this request carries its id (the caller's, if it sent a
        # sane one, e.g. nginx's $request_id), and so does the answer.
        structlog.contextvars.clear_contextvars()  # nothing of an earlier request
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    async def stop_clock(response: Response) -> Response:
        started = getattr(g, "started", None)
        if started is not None:
            rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
            timings.observe(request.method, rule, time.perf_counter() - started)
        request_id = getattr(g, "request_id", None)
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id
        status = response.status_code
        if status >= 400 and status != 404:
            # Refused requests are worth a line (which device sends bad data, who is
            # throttled); the rest only count in the metrics: the ingest path stays quiet.
            (log.warning if status >= 500 and status != 503 else log.info)(
                "request refused",
                method=request.method,
                route=request.url_rule.rule if request.url_rule is not None else request.path,
                status=status,
            )
        return response

    @app.before_request
    async def no_nul_characters() -> Response | None:
        # PostgreSQL text cannot hold U+0000: a NUL in an id or a query value would
        # fail deep in a query. Refuse it here, naming where it was.
        if "\x00" in request.path:
            return bad_request("path: NUL character")
        for name, value in request.args.items(multi=True):
            if "\x00" in name or "\x00" in value:
                return bad_request(f"{name!r}: NUL character")
        return None

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        name = error.name or "Error"
        return problem(status, name, kind=name.lower().replace(" ", "-"), detail=error.description)

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        if isinstance(error, trio.Cancelled):
            raise error
        log.exception("unhandled error", error=str(error))
        return problem(500, "Internal Server Error", kind="internal")

    return app
