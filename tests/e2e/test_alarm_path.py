"""Alarm through the broker → incident → the grid worker's app topic, and the ladder on top."""

from __future__ import annotations

import asyncio
import json
import time

import aiomqtt
import pytest
from sqlalchemy import select

from alerting.incidents.tables import IncidentRow
from alerting.notify.tables import DeliveryRow
from tests.services import Mosquitto


async def collect(
    port: int, topic: str, into: list[tuple[str, dict]], ready: asyncio.Event
) -> None:  # type: ignore[type-arg]
    async with aiomqtt.Client("127.0.0.1", port, identifier=f"app-{time.monotonic_ns()}") as c:
        await c.subscribe(topic, qos=1)
        ready.set()
        async for msg in c.messages:
            into.append((str(msg.topic), json.loads(bytes(msg.payload))))  # type: ignore[arg-type]


async def publish(port: int, topic: str, payload: dict) -> None:  # type: ignore[type-arg]
    async with aiomqtt.Client("127.0.0.1", port) as c:
        await c.publish(topic, json.dumps(payload), qos=1)


async def wait_until(cond, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.05)


async def worker_a_app_pages_on_record(gateway) -> list[tuple[int, int, str]]:  # type: ignore[no-untyped-def]
    """(delivery, incident, status) of each app page to worker-a, once recorded as sent."""

    async def on_record() -> list[tuple[int, int, str]]:
        async with gateway.sessions() as s:
            rows = await s.execute(
                select(DeliveryRow.id, DeliveryRow.incident_id, DeliveryRow.status).where(
                    DeliveryRow.person_id == "worker-a", DeliveryRow.channel == "app"
                )
            )
            return [tuple(r) for r in rows]  # type: ignore[misc]

    deadline = time.monotonic() + 15
    while [status for *_, status in await on_record()] != ["sent"]:
        assert time.monotonic() < deadline, await on_record()
        await asyncio.sleep(0.05)
    return await on_record()


async def test_smoke_alarm_pages_grid_worker_leader_and_duty_staff_at_once(
    start_gateway,
    mosquitto: Mosquitto,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway()
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/+/incidents", got, ready)
    )
    await ready.wait()
    ts = int(time.time() * 1000)
    await publish(
        mosquitto.port,
        "safety/demo/smoke/SD-0001/event",
        {"ts": ts, "seq": 501, "event": "alarm", "smoke_dbm": 0.4},
    )
    await wait_until(
        lambda: {t.split("/")[3] for t, _ in got} >= {"worker-a", "leader-b01", "duty-1"}
    )
    listener.cancel()

    recipients = {t.split("/")[3] for t, _ in got}
    assert "worker-b" not in recipients, "the worker of another grid is not paged"
    message = next(m for t, m in got if t.endswith("/worker-a/incidents"))
    text = json.dumps(message, ensure_ascii=False)
    assert "SD-0001" in text and "critical" in text
    assert str(ts) in text and "501" in text, "the message carries the ts/seq of the alarm reading"
    async with gateway.sessions() as s:
        incidents = (await s.scalars(select(IncidentRow))).all()
    assert [(i.rule_id, i.severity, i.status) for i in incidents] == [
        ("smoke.alarm", "critical", "open")
    ]


async def test_repeated_alarm_is_one_incident_with_repeats_counted(
    start_gateway,
    mosquitto: Mosquitto,  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway()
    ts = int(time.time() * 1000)
    for i in range(3):
        await publish(
            mosquitto.port,
            "safety/demo/sos/SOS-0007/event",
            {"ts": ts + i * 1000, "seq": 900 + i, "event": "button_pressed"},
        )

    async def incidents() -> list[IncidentRow]:
        async with gateway.sessions() as s:
            return list((await s.scalars(select(IncidentRow))).all())

    deadline = time.monotonic() + 15
    rows: list[IncidentRow] = []
    while time.monotonic() < deadline:
        rows = await incidents()
        if rows and gateway.ingest.stats.stored >= 3:
            break
        await asyncio.sleep(0.1)
    assert len(rows) == 1 and rows[0].rule_id == "sos.button"


async def test_a_rule_disabled_through_the_api_stays_disabled_after_a_restart(
    start_gateway, mosquitto: Mosquitto  # type: ignore[no-untyped-def]
) -> None:
    gateway = await start_gateway()
    control = gateway.api_services().rules
    await control.set_enabled("gate.door_held_open", False, "secretary")
    assert not gateway.engine.rules.by_id["gate.door_held_open"].enabled

    restarted = await start_gateway(mqtt={"url": mosquitto.url, "client_id": "gw-second"})
    assert restarted.rules.by_id["gate.door_held_open"].enabled is False
    assert restarted.rules.by_id["gate.door_forced"].enabled is True


async def test_an_alarm_after_the_database_dropped_its_connections_still_pages(
    postgres_url: str,
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
) -> None:
    """PostgreSQL restarts or fails over: every connection the alarm path had is gone. The
    alarm path keeps no ping before each alarm (three round trips), so its first transaction
    meets the dead connection; it must retry on a fresh one, not drop the alarm."""
    import asyncpg

    from tests.services import pg_admin_url

    gateway = await start_gateway(database={"url": postgres_url})
    assert gateway.alarm_db is not None, "PostgreSQL: the alarm path has a pool of its own"
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/+/incidents", got, ready)
    )
    await ready.wait()
    admin = await asyncpg.connect(pg_admin_url())
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = $1 AND application_name LIKE '%-alarms'",
            postgres_url.rsplit("/", 1)[1],
        )
    finally:
        await admin.close()
    assert killed >= 1, "the alarm pool's standing connections were open"
    await publish(
        mosquitto.port,
        "safety/demo/smoke/SD-0001/event",
        {"ts": int(time.time() * 1000), "seq": 601, "event": "alarm", "smoke_dbm": 0.4},
    )
    await wait_until(lambda: any(t.endswith("/worker-a/incidents") for t, _ in got))
    listener.cancel()
    async with gateway.sessions() as s:
        incidents = (await s.scalars(select(IncidentRow))).all()
    assert [(i.rule_id, i.status) for i in incidents] == [("smoke.alarm", "open")]


async def test_a_fire_alarm_is_opened_and_planned_in_five_statements_on_postgresql(
    postgres_url: str,
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
) -> None:
    """On a busy box every round trip to PostgreSQL waits for both processes to be scheduled
    (3–10 ms each at 20,000 msg/s in benchmarks/fleet_bench.py), so the opening keeps to one
    statement per table: the incident's key and its place's silence in one query, the
    incident, then its timer, events and deliveries in one flush each — no timer written and
    then updated, no event on its own."""
    from sqlalchemy import event

    gateway = await start_gateway(database={"url": postgres_url})
    assert gateway.alarm_db is not None
    statements: list[str] = []

    def count(_c, _cursor, statement: str, *_args) -> None:  # type: ignore[no-untyped-def]
        verb, *rest = statement.split()
        statements.append(verb if verb == "SELECT" else f"{verb} {rest[1]}")  # INSERT INTO t

    event.listen(gateway.alarm_db.sync_engine, "before_cursor_execute", count)
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/+/incidents", got, ready)
    )
    await ready.wait()
    await publish(
        mosquitto.port,
        "safety/demo/smoke/SD-0001/event",
        {"ts": int(time.time() * 1000), "seq": 701, "event": "alarm", "smoke_dbm": 0.4},
    )
    await wait_until(lambda: any(t.endswith("/worker-a/incidents") for t, _ in got))
    listener.cancel()
    event.remove(gateway.alarm_db.sync_engine, "before_cursor_execute", count)
    # The pages went out while the opening committed; each is on record once it had.
    async def recorded() -> set[str]:
        async with gateway.sessions() as s:
            return set((await s.scalars(select(DeliveryRow.status))).all())

    deadline = time.monotonic() + 10
    while await recorded() != {"sent"}:
        assert time.monotonic() < deadline, await recorded()
        await asyncio.sleep(0.05)
    assert statements == [
        "SELECT",  # the incident's key and its place's silence
        "INSERT incident",
        "INSERT escalation_timer",
        "INSERT incident_event",
        "INSERT delivery",
    ], statements


async def test_a_fire_alarm_pages_while_postgresql_holds_back_writing_its_incident(
    postgres_url: str,
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
) -> None:
    """The page names its incident and its delivery by ids the gateway drew from PostgreSQL
    ahead of time, so it goes out after the one query that decides whether to page; the rows
    follow. Here another session holds the incident table against writes (as a long
    maintenance statement would): the worker's phone still gets the page, and once the table
    is free the incident and the delivery the page named are on record, the page as sent."""
    import asyncpg

    gateway = await start_gateway(database={"url": postgres_url})
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/+/incidents", got, ready)
    )
    await ready.wait()
    blocker = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    holding = blocker.transaction()
    await holding.start()
    await blocker.execute("LOCK TABLE incident IN EXCLUSIVE MODE")  # reads pass, writes wait
    try:
        await publish(
            mosquitto.port,
            "safety/demo/smoke/SD-0001/event",
            {"ts": int(time.time() * 1000), "seq": 801, "event": "alarm", "smoke_dbm": 0.4},
        )
        await wait_until(lambda: any(t.endswith("/worker-a/incidents") for t, _ in got))
        async with gateway.sessions() as s:
            assert (await s.scalars(select(IncidentRow))).all() == [], "not written yet"
    finally:
        await holding.rollback()
        await blocker.close()
    page = next(body for topic, body in got if topic.endswith("/worker-a/incidents"))
    listener.cancel()
    recorded = await worker_a_app_pages_on_record(gateway)
    assert recorded == [(page["notification"]["delivery"], page["id"], "sent")]
    async with gateway.sessions() as s:
        incident = await s.get(IncidentRow, page["id"])
    assert incident is not None and (incident.rule_id, incident.status) == ("smoke.alarm", "open")


@pytest.mark.parametrize("incident_id", ["drawn ahead", "from the insert"])
async def test_a_page_sent_before_its_transaction_was_cut_names_the_incident_on_record(
    postgres_url: str,
    start_gateway,  # type: ignore[no-untyped-def]
    mosquitto: Mosquitto,
    incident_id: str,
) -> None:
    """The page goes out while its incident is still being written. If PostgreSQL cuts that
    transaction's connection then (a restart, a failover), the gateway opens the incident
    again on a fresh connection; the incident on record must be the one the worker's phone
    already shows, so that tapping "acknowledge" on that page stops the ladder. Also when no
    id was drawn ahead (the reserve ran short) and the INSERTs gave the rows theirs."""
    import asyncpg

    from tests.services import pg_admin_url

    gateway = await start_gateway(database={"url": postgres_url})
    assert gateway.ids is not None
    if incident_id == "from the insert":
        await gateway.ids.fill()  # no top-up under way
        for table in (IncidentRow.__tablename__, DeliveryRow.__tablename__):
            gateway.ids._ids[table].clear()  # the alarm finds none, then tops up
    got: list[tuple[str, dict]] = []  # type: ignore[type-arg]
    ready = asyncio.Event()
    listener = asyncio.create_task(
        collect(mosquitto.port, "safety/demo/workers/+/incidents", got, ready)
    )
    await ready.wait()
    blocker = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    # The alarm's COMMIT waits (a deferred trigger on the incident asks for a lock this test
    # holds): every row is written and the pages are out, nothing is committed yet.
    await blocker.execute(
        "CREATE FUNCTION hold_commit() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$; "
        "CREATE CONSTRAINT TRIGGER hold_commit AFTER INSERT ON incident "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION hold_commit(); "
        "SELECT pg_advisory_lock(4242)"
    )
    try:
        await publish(
            mosquitto.port,
            "safety/demo/smoke/SD-0001/event",
            {"ts": int(time.time() * 1000), "seq": 901, "event": "alarm", "smoke_dbm": 0.4},
        )
        await wait_until(lambda: any(t.endswith("/worker-a/incidents") for t, _ in got))
        admin = await asyncpg.connect(pg_admin_url())
        try:
            waiting = "FROM pg_stat_activity WHERE datname = $1 AND wait_event = 'advisory'"
            database = postgres_url.rsplit("/", 1)[1]
            deadline = time.monotonic() + 10
            while not await admin.fetchval(f"SELECT count(*) {waiting}", database):
                assert time.monotonic() < deadline, "the alarm's commit never waited"
                await asyncio.sleep(0.02)
            killed = await admin.fetchval(
                f"SELECT count(pg_terminate_backend(pid)) {waiting}", database
            )
        finally:
            await admin.close()
        assert killed == 1, "the alarm's transaction was waiting to commit"
    finally:
        await blocker.execute("SELECT pg_advisory_unlock(4242)")
        await blocker.close()
    recorded = await worker_a_app_pages_on_record(gateway)
    listener.cancel()
    async with gateway.sessions() as s:
        incidents = (await s.scalars(select(IncidentRow))).all()
    assert [(i.rule_id, i.status) for i in incidents] == [("smoke.alarm", "open")]
    pages = [body for topic, body in got if topic.endswith("/worker-a/incidents")]
    assert {page["id"] for page in pages} == {incidents[0].id}, "a page names another incident"
    assert {page["notification"]["delivery"] for page in pages} == {
        delivery for delivery, _incident, _status in recorded
    }
