"""The ingest pipeline: writer, device actors and router (and the alert rules the device
actors evaluate, with the alert actor recording their transitions), started and stopped
in order.

Stopping goes source-first (the caller stops its sources), then the device actors
drain their mailboxes into the writer, then the writer commits what it holds: every
receipt handed in before the stop is settled, under a deadline.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial

import trio

from sensorium.actors._alerting import AlertRecorder, NoDataSweeper, RuleBook
from sensorium.actors._device import DeviceContext, DeviceState, device_behavior
from sensorium.actors._envelope import Envelope
from sensorium.actors._router import Router
from sensorium.actors._writer import Writer
from sensorium.engine import ActorRegistry, RestartPolicy
from sensorium.logs import get_logger
from sensorium.storage import (
    AlertPolicy,
    DeviceDirectory,
    MetricCatalog,
    Pool,
    load_high_water_marks,
)

__all__ = ["IngestPipeline", "PipelineOptions"]

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    mailbox_size: int = 64
    idle_timeout_s: float = 60.0
    batch_rows: int = 20_000
    batch_rows_max: int = 100_000
    batch_age_s: float = 0.02
    writer_queue: int = 1024
    shutdown_timeout_s: float = 20.0
    poison_marker: bytes | None = None
    command_timeout_s: float = 30.0
    no_data_sweep_s: float = 5.0
    alert_policy: AlertPolicy = field(default_factory=AlertPolicy)


@dataclass(slots=True)
class IngestPipeline:
    router: Router
    writer: Writer
    registry: ActorRegistry[int, Envelope, DeviceState]
    directory: DeviceDirectory
    catalog: MetricCatalog
    alerts: AlertRecorder

    @classmethod
    @asynccontextmanager
    async def open(cls, pool: Pool, options: PipelineOptions) -> AsyncIterator[IngestPipeline]:
        catalog = MetricCatalog(pool)
        directory = DeviceDirectory(pool)
        await catalog.load()
        await directory.load()
        rules = RuleBook(pool)
        await rules.reload()
        recorder = AlertRecorder(pool, policy=options.alert_policy)
        marks = await load_high_water_marks(pool)
        writer = Writer(
            pool,
            batch_rows=options.batch_rows,
            batch_rows_max=options.batch_rows_max,
            batch_age_s=options.batch_age_s,
            queue_size=options.writer_queue,
            timeout_s=options.command_timeout_s,
        )

        async def stored_keys(
            device_key: int, ts_list: list[int]
        ) -> set[tuple[int, int, int | None]]:
            """Which of these readings are stored; retried until the database answers
            (an outage must delay messages, not turn them into crashes)."""
            attempt = 0
            while True:
                try:
                    rows = await pool.fetch(
                        """SELECT metric_id, (extract(epoch FROM ts) * 1000000)::int8 AS ts_us, seq
                           FROM readings WHERE device_key = $1
                             AND ts = ANY(SELECT timestamptz 'epoch' + t * interval '1 microsecond'
                                          FROM unnest($2::int8[]) AS t)""",
                        device_key,
                        ts_list,
                    )
                    return {(r["metric_id"], r["ts_us"], r["seq"]) for r in rows}
                except trio.Cancelled:
                    raise
                except Exception as exc:
                    attempt += 1
                    log.warning("duplicate check failed; retrying", error=str(exc))
                    await trio.sleep(min(0.05 * 2**attempt, 5.0))

        context = DeviceContext(
            submit=writer.submit,
            metric_ids=catalog.ids,
            metric_id_nowait=catalog.id_nowait,
            stored_keys=stored_keys,
            initial_hwm=lambda key: marks.pop(key, -1),
            poison_marker=options.poison_marker,
            rules_for=rules.rules_for,
            alert=recorder.submit,
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(writer.run)
            nursery.start_soon(recorder.run)
            refresher = trio.CancelScope()

            async def refresh_devices_and_rules() -> None:
                with refresher:
                    async with trio.open_nursery() as inner:
                        inner.start_soon(directory.keep_fresh)
                        inner.start_soon(rules.keep_fresh)
                        sweeper = NoDataSweeper(pool, rules, recorder)
                        inner.start_soon(partial(sweeper.run, interval_s=options.no_data_sweep_s))

            nursery.start_soon(refresh_devices_and_rules)
            router_box: list[Router] = []
            async with ActorRegistry.open(
                device_behavior(context),
                mailbox_size=options.mailbox_size,
                idle_timeout_s=options.idle_timeout_s,
                restart=RestartPolicy(max_restarts=5, window_s=10, backoff_base_s=0.01),
                on_undeliverable=lambda key, env, exc: router_box[0].undeliverable(key, env, exc),
                # A device that keeps crashing stops alone; the others go on.
                on_escalation=lambda key, exc: log.error("device actor escalated", error=str(exc)),
                shutdown_timeout_s=options.shutdown_timeout_s,
            ) as registry:
                router = Router(registry, writer)  # type: ignore[arg-type]
                router_box.append(router)
                try:
                    yield cls(router, writer, registry, directory, catalog, recorder)
                finally:
                    log.info("draining device actors")
            # The registry has drained into the writer: let it flush, under a deadline.
            refresher.cancel()
            writer.close()
            recorder.close()  # the device actors have stopped: what they decided drains
            nursery.cancel_scope.deadline = trio.current_time() + options.shutdown_timeout_s
