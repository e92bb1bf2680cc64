"""The rule book: which enabled rules apply to a device, by its id, its tags or its
tenant, as the database holds them (a fresh database on the session stack)."""

from __future__ import annotations

from sensorium.actors._alerting import RuleBook
from sensorium.storage import (
    connect,
    create_alert_rule,
    create_device,
    create_pool,
    ensure_tenant,
)
from tests.support import StackHandle, fresh_database, run_trio


def _rule(name: str, scope: dict[str, object], *, enabled: bool = True) -> dict[str, object]:
    return {
        "name": name, "scope": scope, "metric": "temperature", "enabled": enabled,
        "condition": {"op": ">", "threshold": 1.0}, "severity": "info", "channels": [],
    }  # fmt: skip


def test_rules_apply_by_device_tag_and_tenant(stack: StackHandle) -> None:
    url = fresh_database(stack, "rulebook")

    async def go() -> dict[str, list[str]]:
        conn = await connect(url)
        try:
            here = await ensure_tenant(conn, "here")
            there = await ensure_tenant(conn, "there")
            fridge = await create_device(conn, name="fridge", tenant=here, tags=["kitchen"])
            door = await create_device(conn, name="door", tenant=here, tags=["hall"])
            far = await create_device(conn, name="far", tenant=there, tags=["kitchen"])
            for tenant, rule in (
                (here, _rule("fridge only", {"device_id": fridge.id})),
                (here, _rule("kitchen", {"tag": "kitchen"})),
                (here, _rule("everything here", {"tenant": True})),
                (here, _rule("switched off", {"tenant": True}, enabled=False)),
                (there, _rule("everything there", {"tenant": True})),
            ):
                await create_alert_rule(conn, tenant_id=tenant, rule=rule)
            keys = {r["id"]: r["key"] for r in await conn.fetch("SELECT id, key FROM devices")}
        finally:
            await conn.close()
        pool = await create_pool(url, min_size=1, max_size=1)
        try:
            book = RuleBook(pool)
            await book.reload()
            return {
                label: sorted(r.name for r in book.rules_for(tenant, keys[d.id], d.id))
                for label, tenant, d in (
                    ("fridge", here, fridge), ("door", here, door), ("far", there, far),
                )
            }  # fmt: skip
        finally:
            await pool.close()

    assert run_trio(go) == {
        "fridge": ["everything here", "fridge only", "kitchen"],
        "door": ["everything here"],
        "far": ["everything there"],  # a tag of another tenant's rule does not reach it
    }
