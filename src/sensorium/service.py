"""The Sensorium service: one trio run holding the engine and the HTTP server.

`sensorium up` runs it on the embedded stack, `sensorium run` against external
servers; both call `serve`. It must run inside `trio_asyncio.open_loop()` (asyncpg).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import httpx
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve
from prometheus_client import CollectorRegistry, Info, PlatformCollector, ProcessCollector
from quart_trio import QuartTrio

from sensorium import __version__
from sensorium.actors import (
    Delivery,
    IngestPipeline,
    Notifier,
    NotifierOptions,
    PipelineOptions,
    RecipientRate,
    SendgridSender,
    SmtpOptions,
    SmtpSender,
    TwilioSender,
    WebhookSender,
)
from sensorium.alert_metrics import AlertCollector
from sensorium.archive import (
    ArchiveCollector,
    ArchiveStatistics,
    keep_archiving,
    store_of,
)
from sensorium.config import Settings
from sensorium.engine import Doorbell, tune_garbage_collector
from sensorium.errors import AlreadyRunning
from sensorium.http import (
    AccessTokens,
    AuthApi,
    Guard,
    HealthCheck,
    IngestOptions,
    accounts_blueprint,
    alerts_blueprint,
    analytics_blueprint,
    auth_blueprint,
    create_app,
    devices_blueprint,
    exports_blueprint,
    ingest_blueprint,
)
from sensorium.ingest_metrics import IngestCollector
from sensorium.logs import get_logger
from sensorium.replica_metrics import ReplicaCollector
from sensorium.sources import Limits, MqttSource, MqttSourceOptions, probe_broker
from sensorium.storage import (
    AlertPolicy,
    BrokerCredential,
    HousekeepingOptions,
    Pool,
    ReadPools,
    acquire_engine_lease,
    broker_credentials,
    create_pool,
    keep_house,
)

__all__ = ["CredentialsSink", "Endpoints", "serve"]

log = get_logger(__name__)

# Called with every device's broker login whenever they change (the embedded stack
# rewrites Mosquitto's password file with them).
CredentialsSink = Callable[[list[BrokerCredential]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Endpoints:
    """The servers this engine talks to."""

    primary_url: str
    replica_urls: list[str] = field(default_factory=list)
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 18830
    mqtt_username: str | None = None
    mqtt_password: str | None = None
    mqtt_tls: ssl.SSLContext | None = None


def _hypercorn_config(settings: Settings) -> HypercornConfig:
    config = HypercornConfig()
    config.bind = [f"{settings.http.host}:{settings.http.port}"]
    config.graceful_timeout = settings.http.shutdown_timeout_s
    config.accesslog = None
    # Through our handler, so hypercorn's lines are JSON like ours.
    config.errorlog = logging.getLogger("hypercorn.error")
    if settings.http.tls_cert and settings.http.tls_key:
        config.certfile = str(settings.http.tls_cert)
        config.keyfile = str(settings.http.tls_key)
    return config


def _pool_check(pool: Pool) -> HealthCheck:
    async def check() -> str | None:
        try:
            await pool.fetchval("SELECT 1", timeout=2.0)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    return check


def _broker_check(endpoints: Endpoints) -> HealthCheck:
    async def check() -> str | None:
        health = await probe_broker(
            endpoints.mqtt_host,
            endpoints.mqtt_port,
            username=endpoints.mqtt_username,
            password=endpoints.mqtt_password,
            tls_context=endpoints.mqtt_tls,
        )
        return None if health.reachable else health.error

    return check


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    Info("sensorium", "Sensorium build information", registry=registry).info(
        {"version": __version__}
    )
    return registry


def _log_asyncio_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    error = context.get("exception")
    log.error(
        "asyncio error nobody handled",
        message=context.get("message", ""),
        error=f"{type(error).__name__}: {error}" if error else None,
    )


async def _sync_credentials(pool: Pool, sink: CredentialsSink, *, interval_s: float = 1.0) -> None:
    """Push broker credentials to ``sink`` at start and whenever their version moves."""
    seen: int | None = None
    while True:
        try:
            version = await pool.fetchval("SELECT version FROM broker_credentials")
            if version != seen:
                async with pool.acquire() as conn:
                    version, credentials = await broker_credentials(conn)
                await sink(credentials)
                log.info("broker credentials updated", version=version, logins=len(credentials))
                seen = version
        except Exception as exc:  # the primary restarting: try again next round
            log.warning("broker credentials sync failed", error=str(exc))
        await trio.sleep(interval_s)


async def _serve_until_stopped(
    settings: Settings,
    app: QuartTrio,
    mqtt: MqttSource,
    *,
    stop: trio.Event,
    background_tasks: list[Callable[[], Awaitable[None]]],
    task_status: trio.TaskStatus[list[str]],
) -> None:
    """Run HTTP, the MQTT source and the background tasks; stop them in order:
    background tasks, then the MQTT source (which drains and acknowledges), then HTTP.
    The caller's pipeline then drains the actors and the writer."""
    http_stop = trio.Event()
    mqtt_stop = trio.Event()
    async with trio.open_nursery() as outer:
        binds = await outer.start(
            partial(
                hypercorn_serve, app, _hypercorn_config(settings), shutdown_trigger=http_stop.wait
            )
        )
        log.info("http listening", binds=binds)
        mqtt_done = trio.Event()

        async def run_mqtt() -> None:
            try:
                await mqtt.run(stop=mqtt_stop)
            finally:
                mqtt_done.set()

        outer.start_soon(run_mqtt)
        async with trio.open_nursery() as background:
            for task in background_tasks:
                background.start_soon(task)
            task_status.started(binds)
            await stop.wait()
            background.cancel_scope.cancel()
        log.info("stopping: mqtt source")
        mqtt_stop.set()
        await mqtt_done.wait()
        log.info("stopping: http")
        http_stop.set()
        outer.cancel_scope.deadline = trio.current_time() + settings.http.shutdown_timeout_s


def _object_store_set(settings: Settings) -> bool:
    """Object storage is configured: an endpoint (MinIO) or credentials (AWS)."""
    archive = settings.archive
    return archive.endpoint_url is not None or archive.access_key_id is not None


def _notifiers(
    pool: Pool, settings: Settings, client: httpx.AsyncClient, bell: Doorbell
) -> list[Notifier]:
    """The notifier actors: webhooks always; email through SendGrid when its API key is
    set, else over SMTP when a host is set; SMS through Twilio when it is configured. A
    channel without a notifier keeps its notifications pending until one is. Email and
    SMS go to people: they have the per-recipient rate (and digests)."""
    smtp, sendgrid, twilio = settings.smtp, settings.sendgrid, settings.twilio
    email: Delivery | None = None
    if sendgrid.api_key is not None:
        email = SendgridSender(
            sendgrid.api_key.get_secret_value(), sender=smtp.from_, base_url=sendgrid.base_url
        )
    elif smtp.host:
        email = SmtpSender(
            SmtpOptions(
                host=smtp.host,
                port=smtp.port,
                username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                starttls=smtp.starttls,
                sender=smtp.from_,
                ca_file=smtp.ca_file,
            )
        )
    sms: Delivery | None = None
    if twilio.account_sid and twilio.auth_token is not None and twilio.from_:
        sms = TwilioSender(
            twilio.account_sid,
            twilio.auth_token.get_secret_value(),
            sender=twilio.from_,
            base_url=twilio.base_url,
        )
    alerts = settings.alerts
    for_people = NotifierOptions(
        recipient_rate=RecipientRate(
            max_messages=alerts.recipient_max_messages,
            window_s=alerts.recipient_window_s,
            digest_max_items=alerts.digest_max_items,
        )
    )
    deliveries: list[tuple[str, Delivery | None, NotifierOptions]] = [
        ("webhook", WebhookSender(client), NotifierOptions()),
        ("email", email, for_people),
        ("sms", sms, for_people),
    ]
    return [
        Notifier(pool, channel, deliver, options, bell=bell)
        for channel, deliver, options in deliveries
        if deliver is not None
    ]


async def _run_notifiers(notifiers: list[Notifier]) -> None:
    async with trio.open_nursery() as nursery:
        for notifier in notifiers:
            nursery.start_soon(notifier.run)


async def serve(
    settings: Settings,
    endpoints: Endpoints,
    *,
    stop: trio.Event,
    credentials_sink: CredentialsSink | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until ``stop`` is set, then shut down in order under a deadline.

    Reports the HTTP addresses it listens on through ``task_status``.
    """
    # trio-asyncio's default turns any asyncio error nobody retrieved (a library's
    # stray future) into a crash of the whole trio run: log it instead, ingest goes on.
    asyncio.get_event_loop().set_exception_handler(_log_asyncio_error)
    db = settings.database
    tokens = AccessTokens(settings.auth)  # a bad auth setting stops us before anything
    lease = await acquire_engine_lease(endpoints.primary_url, timeout=db.connect_timeout_s)
    pools: list[Pool] = []
    webhook_client = httpx.AsyncClient(timeout=10, follow_redirects=False)
    try:
        make_pool = partial(
            create_pool,
            min_size=db.pool_min_size,
            max_size=db.pool_max_size,
            timeout=db.connect_timeout_s,
            command_timeout=db.command_timeout_s,
        )
        primary = await make_pool(endpoints.primary_url)
        pools.append(primary)
        checks: dict[str, HealthCheck] = {"primary": _pool_check(primary)}
        replica_pools: dict[str, Pool] = {}
        for index, url in enumerate(endpoints.replica_urls, start=1):
            # A replica that is down at start-up must not stop the engine: pools
            # start empty and connect on first use.
            replica = await create_pool(
                url,
                min_size=0,
                max_size=db.pool_max_size,
                timeout=db.connect_timeout_s,
                command_timeout=db.command_timeout_s,
            )
            pools.append(replica)
            checks[f"replica-{index}"] = _pool_check(replica)
            replica_pools[f"replica-{index}"] = replica
        reads = ReadPools.of(primary, replica_pools, max_lag_s=db.replica_max_lag_s)
        checks["mqtt"] = _broker_check(endpoints)

        async def keep_lease() -> None:
            # A primary restart drops the lease's connection: take the lease again,
            # unless another engine got it in between.
            nonlocal lease
            while True:
                await lease.wait_lost()
                log.warning("engine lease connection lost; taking it again")
                while True:
                    try:
                        lease = await acquire_engine_lease(
                            endpoints.primary_url, timeout=db.connect_timeout_s
                        )
                        break
                    except AlreadyRunning as exc:
                        log.error("engine lease taken by another engine", error=str(exc))
                        stop.set()
                        return
                    except Exception:
                        await trio.sleep(1.0)

        engine = settings.engine
        options = PipelineOptions(
            mailbox_size=engine.mailbox_size,
            idle_timeout_s=engine.idle_timeout_s,
            batch_rows=engine.batch_rows,
            batch_rows_max=engine.batch_rows_max,
            batch_age_s=engine.batch_age_ms / 1000,
            writer_queue=engine.writer_queue,
            shutdown_timeout_s=engine.shutdown_timeout_s,
            no_data_sweep_s=engine.no_data_sweep_s,
            alert_policy=AlertPolicy(
                flap_opens=settings.alerts.flap_opens,
                flap_window_s=settings.alerts.flap_window_s,
            ),
            poison_marker=engine.poison_marker.encode() if engine.poison_marker else None,
            command_timeout_s=db.command_timeout_s,
        )
        limits = Limits(
            max_payload_bytes=settings.ingest.max_payload_bytes,
            max_batch_items=settings.ingest.max_batch_items,
            max_future_skew_s=settings.ingest.max_future_skew_s,
        )
        async with IngestPipeline.open(primary, options) as pipeline:
            tune_garbage_collector()
            mqtt = MqttSource(
                MqttSourceOptions(
                    host=endpoints.mqtt_host,
                    port=endpoints.mqtt_port,
                    username=endpoints.mqtt_username,
                    password=endpoints.mqtt_password,
                    client_id=settings.mqtt.client_id,
                    topic=settings.mqtt.topic,
                    tls=endpoints.mqtt_tls,
                    connect_timeout_s=settings.mqtt.connect_timeout_s,
                    max_inflight=engine.max_inflight_messages,
                    drain_timeout_s=engine.shutdown_timeout_s,
                ),
                router=pipeline.router,
                directory=pipeline.directory,
                limits=limits,
            )
            guard = Guard(tokens, requests_per_s=settings.auth.requests_per_user_per_s)
            registry = _registry()
            registry.register(IngestCollector(pipeline, mqtt))
            notifiers = _notifiers(primary, settings, webhook_client, pipeline.alerts.bell)
            registry.register(AlertCollector(pipeline, notifiers))
            registry.register(ReplicaCollector(reads))
            archive_statistics = ArchiveStatistics()
            registry.register(ArchiveCollector(archive_statistics))
            app = create_app(
                checks=checks,
                registry=registry,
                blueprints=[
                    ingest_blueprint(
                        pipeline,
                        IngestOptions(
                            limits,
                            ack_timeout_s=engine.http_ack_timeout_s,
                            requests_per_device_per_s=(
                                settings.ingest.http_requests_per_device_per_s
                            ),
                        ),
                    ),
                    auth_blueprint(AuthApi(primary, tokens, settings.auth)),
                    devices_blueprint(primary, guard),
                    accounts_blueprint(primary, guard),
                    analytics_blueprint(reads, guard),
                    alerts_blueprint(primary, guard),
                    exports_blueprint(
                        reads,
                        guard,
                        store_of(settings.archive) if _object_store_set(settings) else None,
                    ),
                ],
                max_content_length=settings.ingest.max_payload_bytes,
            )
            await _serve_until_stopped(
                settings,
                app,
                mqtt,
                stop=stop,
                background_tasks=[
                    keep_lease,
                    reads.keep_checking,
                    partial(
                        keep_house,
                        primary,
                        HousekeepingOptions(
                            interval_s=engine.housekeeping_interval_s,
                            rollup_settle_s=engine.rollup_settle_s,
                        ),
                    ),
                    partial(_run_notifiers, notifiers),
                    *(
                        [
                            partial(
                                keep_archiving,
                                primary,
                                store_of(settings.archive),
                                retention_days=settings.archive.retention_days,
                                interval_s=settings.archive.interval_s,
                                statistics=archive_statistics,
                            )
                        ]
                        if settings.archive.enabled
                        else []
                    ),
                    *(
                        [partial(_sync_credentials, primary, credentials_sink)]
                        if credentials_sink is not None
                        else []
                    ),
                ],
                task_status=task_status,
            )
    finally:
        with trio.CancelScope(shield=True):
            await webhook_client.aclose()
            for pool in pools:
                await pool.close()
            await lease.release()
