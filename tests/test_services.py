"""The shared service fixtures start real servers."""

from __future__ import annotations

import asyncpg  # type: ignore[import-untyped]
import paho.mqtt.publish as publish
import paho.mqtt.subscribe as subscribe

from tests.services import Influxd, Mosquitto


def test_mosquitto_round_trip_survives_restart(mosquitto: Mosquitto) -> None:
    publish.single("t/retained", b"kept", qos=1, retain=True, port=mosquitto.port)
    mosquitto.restart()
    msg = subscribe.simple("t/retained", port=mosquitto.port)
    assert msg.payload == b"kept"


def test_influxd_accepts_points(influxd: Influxd, influx_db: str) -> None:
    import urllib.request

    req = urllib.request.Request(
        f"{influxd.url}/write?db={influx_db}&precision=ms", data=b"m,device=d1 v=1i 1700000000000"
    )
    urllib.request.urlopen(req, timeout=5).close()
    out = influxd.query("SELECT v FROM m", influx_db)
    assert out["results"][0]["series"][0]["values"][0][1] == 1


async def test_postgres_database_is_fresh(postgres_url: str) -> None:
    conn = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
    try:
        tables = await conn.fetch("select tablename from pg_tables where schemaname='public'")
    finally:
        await conn.close()
    assert tables == []
