"""`sensorium`: the one command-line entry point."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import click
import trio
import typer

from sensorium import __version__
from sensorium._cli_support import (
    detach as up_detached,
)
from sensorium._cli_support import (
    err,
    our_errors,
    out,
    print_report,
    print_status,
    run_async,
)
from sensorium.config import Settings, load_settings
from sensorium.errors import ConfigError, SensoriumError
from sensorium.logs import configure_logging

__all__ = ["app", "main"]


app = typer.Typer(
    name="sensorium",
    help="Sensorium: an IoT telemetry engine. `sensorium up` runs everything locally.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
user_app = typer.Typer(help="Manage users.", no_args_is_help=True)
device_app = typer.Typer(help="Manage devices.", no_args_is_help=True)
rule_app = typer.Typer(help="Manage alert rules (as the HTTP API does).", no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(device_app, name="device")
app.add_typer(rule_app, name="rule")
archive_app = typer.Typer(
    help="Retention: old days of readings to S3-compatible storage, and back.",
    no_args_is_help=True,
)
app.add_typer(archive_app, name="archive")


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config", help="TOML settings file (default: $SENSORIUM_CONFIG).", dir_okay=False
    ),
]
StateDirOption = Annotated[
    Path | None,
    typer.Option("--state-dir", help="State folder of the embedded stack (default .sensorium)."),
]
LogFormatOption = Annotated[
    str | None, typer.Option("--log-format", help="json (default) or text.")
]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    settings = load_settings(config, **{k: v for k, v in overrides.items() if v is not None})
    configure_logging(log_format=settings.log_format, level=settings.log_level)
    return settings


def _stack(settings: Settings, state_dir: Path | None) -> Any:
    from sensorium.stack import EmbeddedStack

    return EmbeddedStack(settings, state_dir=state_dir)


def _primary_url(settings: Settings, state_dir: Path | None) -> str:
    """The configured primary, else the embedded stack's."""
    if settings.database.primary_url:
        return settings.database.primary_url
    stack = _stack(settings, state_dir)
    secrets = stack.layout.load_secrets()
    if secrets is None:
        raise ConfigError(
            "invalid setting database.primary_url (SENSORIUM_DATABASE__PRIMARY_URL): not set, "
            f"and there is no embedded stack in {stack.layout.state_dir} (run `sensorium up`)"
        )
    url: str = stack.urls(secrets).primary
    return url


@app.command()
def version() -> None:
    """Print the version."""
    out.print(__version__)


@app.command()
def up(
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    detach: Annotated[bool, typer.Option("--detach", help="Return once healthy.")] = False,
    tls: Annotated[
        bool, typer.Option("--tls", help="Make a local CA; serve MQTT/TLS and HTTPS.")
    ] = False,
    log_format: LogFormatOption = None,
    ready_timeout: Annotated[float, typer.Option(help="--detach: seconds to wait.")] = 300.0,
    simulate: Annotated[
        int, typer.Option(help="Also run N simulated devices (one message/s each).")
    ] = 0,
    with_prometheus: Annotated[
        bool,
        typer.Option(
            "--with-prometheus",
            help="Also run Prometheus (Debian's package) scraping the stack, with the "
            "alert rules of deploy/prometheus.",
        ),
    ] = False,
) -> None:
    """Run the whole stack locally: PostgreSQL primary + 2 replicas, Mosquitto, engine, HTTP."""
    from sensorium.stack import pid_alive, raise_open_file_limit, read_pid

    settings = _settings(config, state_dir=state_dir, log_format=log_format)
    stack = _stack(settings, state_dir)
    raise_open_file_limit()
    if not detach and pid_alive(read_pid(stack.layout.engine_pid_file)):
        # Already up: start only what is missing, report, and leave it running.
        detach = True
    if detach:
        raise typer.Exit(
            up_detached(
                stack,
                config=config,
                tls=tls,
                timeout=ready_timeout,
                simulate=simulate,
                with_prometheus=with_prometheus,
            )
        )
    from sensorium.launcher import UpReport, run_up

    def on_ready(report: UpReport) -> None:
        if report.admin_password:
            file = stack.layout.admin_password_file
            fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(report.admin_password)
        print_report(report)

    with stack.layout.hold_up_lock():
        try:
            trio.run(
                lambda: run_up(
                    settings,
                    stack,
                    tls=tls,
                    on_ready=on_ready,
                    simulate=simulate,
                    with_prometheus=with_prometheus,
                )
            )
        except KeyboardInterrupt:
            pass
        finally:
            stack.stop_services()
            stack.layout.admin_password_file.unlink(missing_ok=True)
    err.print("sensorium stopped")


@app.command()
def status(
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show every component's endpoint, pid, health and replica lag.

    Exit code 0 healthy, 1 degraded, 3 stopped.
    """
    from sensorium.stack import collect_status

    settings = _settings(config, state_dir=state_dir)
    stack = _stack(settings, state_dir)
    result = run_async(lambda: collect_status(stack))
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    elif not result.components:
        out.print(f"no stack in {stack.layout.state_dir}")
    else:
        print_status(result)
    raise typer.Exit(result.exit_code)


@app.command()
def down(
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for a graceful stop.")] = 60.0,
    purge: Annotated[bool, typer.Option("--purge", help="Then delete all its data.")] = False,
) -> None:
    """Stop a detached stack (engine first, then broker, replicas, primary)."""
    from sensorium.stack import pid_alive, read_pid, stop_pid

    settings = _settings(config, state_dir=state_dir)
    stack = _stack(settings, state_dir)
    pid = read_pid(stack.layout.engine_pid_file)
    if pid_alive(pid):
        assert pid is not None
        err.print(f"stopping sensorium up (pid {pid})")
        stop_pid(pid, timeout=timeout)
    # Whatever an engine that died left running.
    stack.stop_services()
    if purge:
        stack.purge()
        err.print(f"stopped; deleted {stack.layout.state_dir}")
    else:
        err.print("stopped")


@app.command()
def run(
    config: ConfigOption = None,
    log_format: LogFormatOption = None,
    migrate: Annotated[bool, typer.Option(help="Apply migrations first.")] = True,
) -> None:
    """Run the engine and HTTP against external PostgreSQL and MQTT (production mode)."""
    from sensorium.launcher import run_external
    from sensorium.stack import raise_open_file_limit

    settings = _settings(config, log_format=log_format)
    raise_open_file_limit()
    trio.run(lambda: run_external(settings, migrate=migrate))


@app.command("migrate")
def migrate_command(
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Apply the schema migrations that are missing."""
    from sensorium.storage import apply_migrations, connect

    settings = _settings(config, state_dir=state_dir)
    url = _primary_url(settings, state_dir)

    async def go() -> list[str]:
        conn = await connect(url)
        try:
            return [f"{m.version:04d}_{m.name}" for m in await apply_migrations(conn)]
        finally:
            await conn.close()

    applied = run_async(go)
    out.print("applied: " + ", ".join(applied) if applied else "schema is up to date")


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Option(help="Login email.")],
    role: Annotated[str, typer.Option(help="admin, operator or viewer.")] = "viewer",
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")] = "default",
    password: Annotated[
        str | None, typer.Option(help="Password (default: generated and printed once).")
    ] = None,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Create a user in a tenant."""
    from sensorium.storage import ROLES, connect, create_user, new_secret

    if role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)}")
    settings = _settings(config, state_dir=state_dir)
    url = _primary_url(settings, state_dir)
    chosen = password or new_secret(12)

    async def go() -> Any:
        conn = await connect(url)
        try:
            return await create_user(conn, email=email, password=chosen, role=role, tenant=tenant)
        finally:
            await conn.close()

    user = run_async(go)
    out.print(f"user {user.id} {user.email} ({user.role}) in tenant {tenant}")
    if password is None:
        out.print(f"password: {chosen}  (shown once)")


@device_app.command("create")
def device_create(
    name: Annotated[str, typer.Argument(help="A name for people.")],
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")] = "default",
    tag: Annotated[list[str] | None, typer.Option(help="A tag (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Register a device; prints its id and its token (shown only now)."""
    from sensorium.storage import connect, create_device

    settings = _settings(config, state_dir=state_dir)
    url = _primary_url(settings, state_dir)

    async def go() -> Any:
        conn = await connect(url)
        try:
            return await create_device(conn, name=name, tenant=tenant, tags=tag or [])
        finally:
            await conn.close()

    device = run_async(go)
    if as_json:
        print(json.dumps(device.as_json()))
    else:
        out.print(f"device {device.id} ({device.name}) in tenant {device.tenant_id}")
        out.print(f"token: {device.token}  (shown once)")


RuleTenantOption = Annotated[str, typer.Option(help="Tenant name.")]


def _rule_body(text: str, model: Any) -> Any:
    """A rule (or changes to one) given as JSON, or as @FILE holding JSON, checked by
    the HTTP API's own model; a bad one stops the command naming the fields."""
    from pydantic import ValidationError

    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    if "\\u0000" in text or "\x00" in text:
        raise ConfigError("the rule holds a NUL character")
    try:
        return model.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'rule'}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        raise ConfigError(f"invalid rule: {problems}") from None


def _with_tenant(
    config: Path | None, state_dir: Path | None, tenant: str, work: Any, *, create: bool = False
) -> Any:
    """Run ``work(conn, tenant_id)`` on the primary; an unknown tenant stops the command
    (``create``: it is made)."""
    from sensorium.storage import connect, ensure_tenant

    url = _primary_url(_settings(config, state_dir=state_dir), state_dir)

    async def go() -> Any:
        conn = await connect(url)
        try:
            if create:
                tenant_id = await ensure_tenant(conn, tenant)
            else:
                tenant_id = await conn.fetchval("SELECT id FROM tenants WHERE name = $1", tenant)
                if tenant_id is None:
                    raise ConfigError(f"no tenant named {tenant!r}")
            return await work(conn, tenant_id)
        finally:
            await conn.close()

    return run_async(go)


def _print_rule(rule: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(rule.as_json()))
        return
    state = "enabled" if rule.enabled else "disabled"
    out.print(
        f"rule {rule.id} {rule.name!r} ({rule.severity}, {state}): {rule.metric} "
        f"{json.dumps(rule.condition)} on {json.dumps(rule.scope)} -> "
        + (", ".join(c.get("to") or c.get("url") for c in rule.channels) or "no channels")
    )


@rule_app.command("create")
def rule_create(
    rule: Annotated[str, typer.Argument(help="The rule as JSON (as POST /alert-rules), or @FILE.")],
    tenant: Annotated[str, typer.Option(help="Tenant name (created if new).")] = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Create an alert rule; the engine applies it within a second or two."""
    from sensorium.http import AlertRuleCreate
    from sensorium.storage import create_alert_rule, get_device

    body = _rule_body(rule, AlertRuleCreate)

    async def work(conn: Any, tenant_id: int) -> Any:
        device = body.scope.model_dump().get("device_id")
        if device and await get_device(conn, tenant_id=tenant_id, device_id=device) is None:
            raise ConfigError(f"invalid rule: scope.device_id: no device {device!r} in {tenant}")
        return await create_alert_rule(conn, tenant_id=tenant_id, rule=body.model_dump(mode="json"))

    _print_rule(_with_tenant(config, state_dir, tenant, work, create=True), as_json)


@rule_app.command("list")
def rule_list(
    tenant: RuleTenantOption = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines.")] = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """List a tenant's alert rules."""
    from sensorium.storage import list_alert_rules

    async def work(conn: Any, tenant_id: int) -> Any:
        return await list_alert_rules(conn, tenant_id=tenant_id)

    for found in _with_tenant(config, state_dir, tenant, work):
        _print_rule(found, as_json)


@rule_app.command("update")
def rule_update(
    rule_id: Annotated[int, typer.Argument(help="The rule's id.")],
    changes: Annotated[
        str, typer.Argument(help='Fields to change, as JSON (like {"enabled": false}), or @FILE.')
    ],
    tenant: RuleTenantOption = "default",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Change some of a rule's fields (as PATCH /alert-rules/{id})."""
    from sensorium.http import AlertRuleUpdate
    from sensorium.storage import update_alert_rule

    body = _rule_body(changes, AlertRuleUpdate)
    fields = body.model_dump(mode="json", exclude_unset=True)
    if any(v is None for k, v in fields.items() if k not in ("renotify_s", "quiet_hours")):
        raise ConfigError("invalid rule: only renotify_s and quiet_hours may be set to null")

    async def work(conn: Any, tenant_id: int) -> Any:
        return await update_alert_rule(conn, tenant_id=tenant_id, rule_id=rule_id, changes=fields)

    updated = _with_tenant(config, state_dir, tenant, work)
    if updated is None:
        raise ConfigError(f"no alert rule {rule_id} in tenant {tenant!r}")
    _print_rule(updated, as_json)


@rule_app.command("delete")
def rule_delete(
    rule_id: Annotated[int, typer.Argument(help="The rule's id.")],
    tenant: RuleTenantOption = "default",
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Delete an alert rule (its alerts and their history go with it)."""
    from sensorium.storage import delete_alert_rule

    async def work(conn: Any, tenant_id: int) -> Any:
        return await delete_alert_rule(conn, tenant_id=tenant_id, rule_id=rule_id)

    if not _with_tenant(config, state_dir, tenant, work):
        raise ConfigError(f"no alert rule {rule_id} in tenant {tenant!r}")
    out.print(f"deleted rule {rule_id}")


def _on_primary(config: Path | None, state_dir: Path | None, work: Any) -> Any:
    """Run ``work(pool, settings)`` with a small pool on the primary."""
    from sensorium.storage import create_pool

    settings = _settings(config, state_dir=state_dir)
    url = _primary_url(settings, state_dir)

    async def go() -> Any:
        pool = await create_pool(url, min_size=1, max_size=3, command_timeout=600)
        try:
            return await work(pool, settings)
        finally:
            await pool.close()

    return run_async(go)


@archive_app.command("run")
def archive_run(
    retention_days: Annotated[
        int | None, typer.Option(help="Days kept (default: the archive.retention_days setting).")
    ] = None,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Archive every day past the retention window now (the engine's job does it hourly
    when archive.enabled is set)."""
    from sensorium.archive import archive_due_days, store_of

    async def work(pool: Any, settings: Settings) -> Any:
        days = retention_days or settings.archive.retention_days
        return await archive_due_days(pool, store_of(settings.archive), retention_days=days)

    done = _on_primary(config, state_dir, work)
    for result in done:
        out.print(
            f"archived {result.day}: {result.readings} readings in {result.objects} objects "
            f"({result.manifest_key})"
        )
    if not done:
        out.print("no day to archive (or none archived: see the log)")


@archive_app.command("list")
def archive_list(config: ConfigOption = None, state_dir: StateDirOption = None) -> None:
    """The archived days: readings, manifest, when archived and restored."""

    async def work(pool: Any, settings: Settings) -> Any:
        return await pool.fetch(
            "SELECT day, readings, manifest_key, archived_at, restored_at "
            "FROM archived_days ORDER BY day"
        )

    for row in _on_primary(config, state_dir, work):
        restored = f", restored {row['restored_at']:%Y-%m-%d %H:%M}" if row["restored_at"] else ""
        out.print(
            f"{row['day']}  {row['readings']} readings  {row['manifest_key']}  "
            f"archived {row['archived_at']:%Y-%m-%d %H:%M}{restored}"
        )


@archive_app.command("restore")
def archive_restore(
    day: Annotated[str, typer.Argument(help="The UTC day, YYYY-MM-DD.")],
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Load an archived day back into PostgreSQL, checked against its manifest."""
    import datetime as dt

    from sensorium.archive import restore_day, store_of

    try:
        when = dt.date.fromisoformat(day)
    except ValueError:
        raise ConfigError(f"DAY must be YYYY-MM-DD, not {day!r}") from None

    async def work(pool: Any, settings: Settings) -> Any:
        return await restore_day(pool, store_of(settings.archive), when)

    out.print(f"restored {when}: {_on_primary(config, state_dir, work)} readings")


@app.command()
def simulate(
    devices: Annotated[int, typer.Option(help="How many devices to provision and run.")] = 100,
    rate: Annotated[float, typer.Option(help="Messages per second, whole fleet.")] = 100.0,
    duration: Annotated[float, typer.Option(help="Seconds to run.")] = 10.0,
    transport: Annotated[str, typer.Option(help="mqtt or http.")] = "mqtt",
    metrics: Annotated[int, typer.Option(help="Readings per message.")] = 3,
    config: ConfigOption = None,
    state_dir: StateDirOption = None,
) -> None:
    """Provision simulated devices and publish realistic sensor series with sequence numbers."""
    from sensorium.bench import (
        provision_devices,
        run_http_load,
        run_mqtt_load,
        wait_for_broker_login,
    )

    if transport not in ("mqtt", "http"):
        raise ConfigError("--transport must be mqtt or http")
    settings = _settings(config, state_dir=state_dir)
    url = _primary_url(settings, state_dir)
    messages = max(1, int(rate * duration / devices))
    mqtt_host = settings.mqtt.host
    mqtt_port = (
        settings.stack.mqtt_port if not settings.database.primary_url else settings.mqtt.port
    )
    http_url = f"http://{settings.http.host}:{settings.http.port}"

    async def go() -> Any:
        fleet = await provision_devices(url, devices)
        err.print(f"provisioned {len(fleet)} devices; {messages} messages each")
        if transport == "mqtt":
            await wait_for_broker_login(fleet[-1], host=mqtt_host, port=mqtt_port)
            return await run_mqtt_load(
                fleet, port=mqtt_port, host=mqtt_host, messages=messages, metrics=metrics, rate=rate
            )
        return await run_http_load(fleet, base_url=http_url, messages=messages, metrics=metrics)

    result = run_async(go)
    out.print(
        f"sent {result.messages} messages ({result.readings} readings) from {result.devices} "
        f"devices in {result.seconds:.1f} s; failures: {result.failures}"
    )


def _sizes(text: str | None, option: str) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(
            f"{option} takes whole numbers separated by commas, not {text!r}"
        ) from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"{option} needs at least one size, each at least 1")
    return sizes


@app.command()
def bench(
    suite: Annotated[
        str, typer.Argument(help="ingest, writer, actors, scale, query, alerts, archive.")
    ],
    devices: Annotated[
        int | None, typer.Option(help="ingest, writer: simulated devices (2000); query: 200.")
    ] = None,
    queries: Annotated[int, typer.Option(help="query: API queries timed.")] = 100,
    probes: Annotated[
        int, typer.Option(help="alerts: probe devices (each crosses and clears its rule).")
    ] = 100,
    probe_seconds: Annotated[
        float, typer.Option(help="alerts: seconds of the half-rate phase.")
    ] = 40.0,
    messages: Annotated[int, typer.Option(help="ingest, writer: messages per device.")] = 20,
    metrics: Annotated[int, typer.Option(help="ingest, writer: readings per message.")] = 3,
    rate: Annotated[float, typer.Option(help="ingest: messages/s for the fleet; 0 = max.")] = 0,
    transport: Annotated[str, typer.Option(help="ingest: mqtt or http.")] = "mqtt",
    http_batch: Annotated[int, typer.Option(help="ingest over http: messages per request.")] = 10,
    rounds: Annotated[
        int,
        typer.Option(
            min=1, help="writer: interleaved rounds of the writer and its baselines (medians)."
        ),
    ] = 5,
    actors: Annotated[
        str | None,
        typer.Option(help="actors, scale: device actor counts, e.g. 10000,100000."),
    ] = None,
    scale_devices: Annotated[
        str | None, typer.Option(help="scale: fleet sizes, e.g. 1000,10000.")
    ] = None,
    scale_metrics: Annotated[
        str | None, typer.Option(help="scale: metrics per message, e.g. 1,3,10.")
    ] = None,
    point_messages: Annotated[
        int, typer.Option(help="scale: messages published at each point.")
    ] = 100_000,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="actors, scale: the large sizes (100k devices, 1M actors); query: 2,000 "
            "devices, loaded once by COPY and kept for the next run.",
        ),
    ] = False,
    data_dir: Annotated[
        Path, typer.Option(help="query --full: where the loaded stack is kept.")
    ] = Path(".sensorium/bench-data"),
    json_file: Annotated[
        Path | None, typer.Option("--json", help="Write every figure here.")
    ] = None,
    plot_file: Annotated[
        Path | None,
        typer.Option("--plot", help="ingest, writer, scale: draw the figures into this PNG."),
    ] = None,
) -> None:
    """Run a benchmark suite; every figure beside its baseline from the same run."""
    from sensorium.bench import (
        FULL_SCALE,
        IngestBenchOptions,
        ScaleOptions,
        SuiteOptions,
        print_report,
        run_suite,
        write_plot,
    )
    from sensorium.stack import raise_open_file_limit

    if suite not in ("ingest", "writer", "actors", "scale", "query", "alerts", "archive"):
        raise ConfigError(
            f"unknown bench suite {suite!r}: ingest, writer, actors, scale, query, alerts, archive"
        )
    if transport not in ("mqtt", "http"):
        raise ConfigError("--transport must be mqtt or http")
    if plot_file is not None and suite not in ("ingest", "writer", "scale", "query"):
        raise ConfigError("--plot draws the ingest, writer and scale suites")
    actor_sizes = _sizes(actors, "--actors")
    scale: ScaleOptions | None = None
    if suite == "scale":
        preset = FULL_SCALE if full else ScaleOptions()
        scale_fleets = _sizes(scale_devices, "--scale-devices") or preset.devices
        scale = ScaleOptions(
            devices=scale_fleets,
            metrics=_sizes(scale_metrics, "--scale-metrics") or preset.metrics,
            metrics_devices=min(scale_fleets),
            messages_per_point=point_messages,
            actors=actor_sizes or preset.actors,
        )
    configure_logging(log_format="text", level="warning")
    raise_open_file_limit()
    options = SuiteOptions(
        rounds=rounds,
        ingest=IngestBenchOptions(
            devices=devices or 2000,
            messages=messages,
            metrics=metrics,
            rate=rate or None,
            transport=transport,
            http_batch=http_batch,
        ),
        actors=actor_sizes,
        full=full,
        scale=scale,
        query_devices=devices,
        queries=queries,
        probes=probes,
        probe_seconds=probe_seconds,
        data_dir=data_dir,
    )
    report = run_suite(suite, options, err)
    print_report(report, out)
    if json_file is not None:
        json_file.write_text(json.dumps(report, indent=2, default=str))
        err.print(f"wrote {json_file}")
    if plot_file is not None:
        write_plot(report, plot_file)
        err.print(f"wrote {plot_file}")


def main() -> None:
    try:
        # Outside standalone mode click hands back the code of a `typer.Exit`.
        code = app(standalone_mode=False)
    except ConfigError as exc:
        err.print(f"error: {exc}")
        sys.exit(2)
    except SensoriumError as exc:
        err.print(f"error: {exc}")
        sys.exit(1)
    except BaseExceptionGroup as group:
        errors = our_errors(group)
        if errors is None:
            raise
        for error in errors:
            err.print(f"error: {error}")
        sys.exit(2 if all(isinstance(e, ConfigError) for e in errors) else 1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(130)
    except click.ClickException as usage:  # non-standalone mode hands us usage errors
        usage.show()
        sys.exit(usage.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
