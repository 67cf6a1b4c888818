"""InfluxDB writers (1.x over httpx, 2.x/3.x through influxdb-client) and their InfluxQL queries.

Both versions are queried with InfluxQL: 1.x natively, 2.x through its v1-compatible ``/query``
endpoint (needs a DBRP mapping; 2.2+ maps a bucket to ``db=<bucket>`` virtually) and 3.x, which
has no Flux at all, through the same endpoint. One query path, tested against a real influxd.
"""

# ruff: noqa: S608 - InfluxQL built from _ident/_literal, which escape every identifier and value
from __future__ import annotations

import asyncio
import functools
import gzip
import logging
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

import httpx

from core.readings import FieldValue
from gateway.storage import RangeBucket, StorageRejected, StorageUnavailable, StoredReading
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.lineprotocol import LineEncoder

if TYPE_CHECKING:
    # Imported when a 2.x writer first writes: the client and what it pulls in (urllib3,
    # reactivex) weigh ~18 MiB of RSS that 1.x and embedded sites need not carry.
    from influxdb_client.client.influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import WriteApi

log = logging.getLogger(__name__)

# Readings encoded per turn of the event loop (≈ 1 ms): a batch of thousands encoded in one go
# stalled the loop for 10–25 ms, and with it any alarm being paged at that moment.
ENCODE_CHUNK = 400


def _ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxWriter:
    """Batches are encoded to line protocol here and sent by each version's ``_send``;
    queries go to ``/query``."""

    def __init__(
        self,
        url: str,
        *,
        query_params: dict[str, str],
        headers: dict[str, str],
        from_prefix: str = "",
        timeout_s: float = 10.0,
        gzip_body: bool = False,
    ) -> None:
        self._url = url.rstrip("/")
        self._query_params = {**query_params, "epoch": "ms"}
        self._headers = headers
        self._from_prefix = from_prefix
        self._timeout_s = timeout_s
        self._gzip = gzip_body
        self._encoder = LineEncoder()
        # Made now, not at the first write: building its TLS context holds the loop for tens
        # of milliseconds, which the first telemetry batch (and an alarm behind it) would wait.
        self._client: httpx.AsyncClient | None = self._new_client()
        self.rejected_batches = 0

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self._url, headers=self._headers, timeout=self._timeout_s)

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = self._new_client()
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def write(self, batch: Sequence[StoredReading]) -> None:
        parts = []
        for start in range(0, len(batch), ENCODE_CHUNK):
            if start:
                await asyncio.sleep(0)
            try:
                part = self._encoder.encode(batch[start : start + ENCODE_CHUNK])
            except (OverflowError, TypeError, ValueError) as exc:  # the data, not the store
                raise StorageRejected(f"cannot write as line protocol: {exc!r}"[:300]) from exc
            if part:
                parts.append(part)
        body = b"\n".join(parts)
        if body:
            await self._send(body)

    async def _send(self, body: bytes) -> None:
        """Store one batch of line protocol; raises StorageUnavailable / StorageRejected."""
        raise NotImplementedError

    def _refused(self, status: int, text: str) -> NoReturn:
        detail = f"InfluxDB answered {status}: {text[:500]}"
        # 400/422: the data itself is refused (field type conflict, bad line). 1.x has written
        # the valid points of the batch ("partial write"); retrying would fail forever.
        if status in (400, 422):
            self.rejected_batches += 1
            raise StorageRejected(detail)
        # 401/403/404 (no such db) and 5xx/429: fixable outside — keep the data, retry later.
        raise StorageUnavailable(detail)

    # -- queries -------------------------------------------------------------------------

    async def _query(self, statements: list[str]) -> list[dict[str, Any]]:
        try:
            resp = await self._http().post(
                "/query", params=self._query_params, data={"q": ";".join(statements)}
            )
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"InfluxDB query failed: {exc!r}") from exc
        if resp.status_code >= 300:
            raise StorageUnavailable(f"InfluxDB query answered {resp.status_code}: {resp.text}")
        results: list[dict[str, Any]] = resp.json().get("results", [])
        for result in results:
            if "error" in result:
                raise StorageUnavailable(f"InfluxDB query error: {result['error']}")
        return results

    def _from(self, measurement: str) -> str:
        return self._from_prefix + _ident(measurement)

    async def _field_types(self) -> list[tuple[str, str, str]]:
        """(measurement, field, type) for every field the device types have."""
        # Every measurement (one per device type, whichever profiles are installed).
        prefix = self._from_prefix
        stmt = f"SHOW FIELD KEYS FROM {prefix}/.*/" if prefix else "SHOW FIELD KEYS"
        results = await self._query([stmt])
        out: list[tuple[str, str, str]] = []
        for result in results:
            for series in result.get("series", []):
                out.extend((series["name"], row[0], row[1]) for row in series["values"])
        return out

    def _where(self, site: str, device_id: str) -> str:
        return f'"site" = {_literal(site)} AND "device" = {_literal(device_id)}'

    async def last(self, site: str, device_id: str) -> dict[str, tuple[int, FieldValue]]:
        # seq is stored for forensics (which message wrote this point), not as a metric.
        fields = [f for f in await self._field_types() if f[1] != "seq"]
        if not fields:
            return {}
        where = self._where(site, device_id)
        statements = [
            f"SELECT last({_ident(f)}) FROM {self._from(m)} WHERE {where}" for m, f, _ in fields
        ]
        out: dict[str, tuple[int, FieldValue]] = {}
        for (_, name, _), result in zip(fields, await self._query(statements), strict=True):
            for series in result.get("series", []):
                ts, value = series["values"][0][:2]
                if value is not None and (name not in out or out[name][0] < ts):
                    out[name] = (int(ts), value)
        return out

    async def range(
        self, site: str, device_id: str, field: str, start_ms: int, end_ms: int, every_ms: int
    ) -> list[RangeBucket]:
        where = f"{self._where(site, device_id)} AND time >= {start_ms}ms AND time < {end_ms}ms"
        group = f"GROUP BY time({every_ms}ms) fill(none)"
        f = _ident(field)
        for measurement, name, ftype in await self._field_types():
            if name != field:
                continue
            src = self._from(measurement)
            if ftype in ("float", "integer"):
                stmt = f"SELECT count({f}), mean({f}), min({f}), max({f}), last({f}) FROM {src}"
                rows = _rows(await self._query([f"{stmt} WHERE {where} {group}"]), 0)
                if rows:
                    return [
                        RangeBucket(int(t), int(c), mean, _num(lo), _num(hi), last)
                        for t, c, mean, lo, hi, last in rows
                    ]
            elif ftype == "boolean":
                results = await self._query(
                    [
                        f"SELECT count({f}), last({f}) FROM {src} WHERE {where} {group}",
                        f"SELECT count({f}) FROM {src} WHERE {where} AND {f} = true {group}",
                    ]
                )
                trues = {t: c for t, c in _rows(results, 1)}
                buckets = [
                    _bool_bucket(int(t), int(c), int(trues.get(t, 0)), last)
                    for t, c, last in _rows(results, 0)
                ]
                if buckets:
                    return buckets
            else:
                stmt = f"SELECT count({f}), last({f}) FROM {src} WHERE {where} {group}"
                rows = _rows(await self._query([stmt]), 0)
                if rows:
                    return [
                        RangeBucket(int(t), int(c), None, None, None, last) for t, c, last in rows
                    ]
        return []


async def _sent_once(body: bytes) -> AsyncIterator[bytes]:
    """The request body as a one-shot stream. httpx's request and response refer to each other,
    so a ``content=bytes`` body lives until the cyclic garbage collector runs; under a backlog
    that held dozens of ~1 MB bodies (RSS rising by 70+ MiB, measured with heaptrack). A spent
    generator lets go of its body as soon as it has been sent."""
    yield body


def _rows(results: list[dict[str, Any]], index: int) -> list[list[Any]]:
    series = results[index].get("series", []) if index < len(results) else []
    return [row for s in series for row in s["values"]]


def _num(value: Any) -> float | None:
    return None if value is None else float(value)


def _bool_bucket(ts: int, count: int, trues: int, last: FieldValue | None) -> RangeBucket:
    frac = trues / count if count else None
    return RangeBucket(ts, count, frac, float(trues == count), float(trues > 0), last)


class Influx1Writer(InfluxWriter):
    """InfluxDB 1.x: ``POST /write?db=&rp=&precision=ms``, optional user/password."""

    def __init__(
        self,
        url: str,
        *,
        write_params: dict[str, str],
        query_params: dict[str, str],
        from_prefix: str,
        timeout_s: float,
        gzip_body: bool,
    ) -> None:
        super().__init__(
            url,
            query_params=query_params,
            headers={},
            from_prefix=from_prefix,
            timeout_s=timeout_s,
            gzip_body=gzip_body,
        )
        self._write_params = {**write_params, "precision": "ms"}

    async def _send(self, body: bytes) -> None:
        """POST one batch of line protocol (1.x ``/write``)."""
        headers = {"Content-Type": "text/plain; charset=utf-8"}
        if self._gzip:
            body = await asyncio.to_thread(gzip.compress, body, 1)  # zlib lets go of the GIL
            headers["Content-Encoding"] = "gzip"
        headers["Content-Length"] = str(len(body))
        try:
            resp = await self._http().post(
                "/write",
                params=self._write_params,
                content=_sent_once(body),
                headers=headers,
            )
        except httpx.HTTPError as exc:
            raise StorageUnavailable(f"InfluxDB write failed: {exc!r}") from exc
        if resp.status_code >= 300:
            self._refused(resp.status_code, resp.text)

    @classmethod
    def from_settings(cls, s: TimeSeriesSettings) -> Influx1Writer:
        params = {"db": s.database}
        if s.retention_policy:
            params["rp"] = s.retention_policy
        if s.username:
            params["u"] = s.username
            params["p"] = s.password.get_secret_value() if s.password else ""
        query = {k: v for k, v in params.items() if k != "rp"}
        prefix = f"{_ident(s.database)}.{_ident(s.retention_policy)}." if s.retention_policy else ""
        return cls(
            s.url,
            write_params=params,
            query_params=query,
            from_prefix=prefix,
            timeout_s=s.write_timeout_s,
            gzip_body=s.gzip,
        )


class Influx2Writer(InfluxWriter):
    """InfluxDB 2.x/3.x: writes through influxdb-client (``/api/v2/write`` with org, bucket and
    token), its synchronous API in a worker thread so the event loop never waits on the socket;
    queries go to the v1-compatible ``/query`` (see the module docstring)."""

    def __init__(
        self, url: str, *, token: str, org: str, bucket: str, timeout_s: float, gzip_body: bool
    ) -> None:
        super().__init__(
            url,
            query_params={"db": bucket},
            headers={"Authorization": f"Token {token}"},
            timeout_s=timeout_s,
            gzip_body=gzip_body,
        )
        self._token, self._org, self._bucket = token, org, bucket
        self._influx: InfluxDBClient | None = None
        self._write_api: WriteApi | None = None

    @classmethod
    def from_settings(cls, s: TimeSeriesSettings) -> Influx2Writer:
        return cls(
            s.url,
            token=s.token.get_secret_value() if s.token else "",
            org=s.org,
            bucket=s.bucket,
            timeout_s=s.write_timeout_s,
            gzip_body=s.gzip,
        )

    async def _send(self, body: bytes) -> None:
        import urllib3
        from influxdb_client.client.influxdb_client import InfluxDBClient
        from influxdb_client.client.write_api import SYNCHRONOUS
        from influxdb_client.domain.write_precision import WritePrecision
        from influxdb_client.rest import ApiException

        if self._write_api is None:
            # No retries inside the client: a failed batch goes to the disk spool, which
            # replays in order; the client's own retries would reorder and hold the loop's data.
            self._influx = InfluxDBClient(
                url=self._url,
                token=self._token,
                org=self._org,
                timeout=int(self._timeout_s * 1000),
                enable_gzip=self._gzip,
                retries=False,
            )
            self._write_api = self._influx.write_api(write_options=SYNCHRONOUS)
        write = functools.partial(
            self._write_api.write,
            bucket=self._bucket,
            org=self._org,
            record=body,
            # annotated as the class, whose constants are plain str
            write_precision=WritePrecision.MS,  # type: ignore[arg-type]
        )
        try:
            await asyncio.to_thread(write)
        except ApiException as exc:
            self._refused(exc.status or 0, str(exc.body or exc.reason))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageUnavailable(f"InfluxDB write failed: {exc!r}") from exc

    async def close(self) -> None:
        await super().close()
        if self._influx is not None:
            self._influx.close()  # type: ignore[no-untyped-call]
            self._influx = self._write_api = None
