"""Influx2Writer: no 2.x server runs here, so a real recording HTTP server checks the request."""

from __future__ import annotations

import asyncio
import gzip
import socket
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.storage import StorageRejected, StorageUnavailable, build_store
from gateway.storage.config import TimeSeriesSettings
from gateway.storage.influx import Influx2Writer
from tests.gateway.storage.storage_helpers import T0, alarm, bytes_kept_by_writes, smoke


def settings(url: str, **kw: object) -> TimeSeriesSettings:
    return TimeSeriesSettings(
        backend="influxdb2", url=url, token="s3cret", org="community", bucket="safety", **kw
    )


async def test_write_request(recording_http_server):
    w = build_store(settings(recording_http_server.url))
    assert isinstance(w, Influx2Writer)
    await w.write([smoke(), alarm(ts=T0 + 1, seq=2)])
    await w.close()
    [req] = recording_http_server.requests
    url = urlsplit(req.path)
    assert url.path == "/api/v2/write"
    assert parse_qs(url.query) == {"org": ["community"], "bucket": ["safety"], "precision": ["ms"]}
    assert req.headers["Authorization"] == "Token s3cret"
    assert req.body.decode().splitlines() == [
        "smoke,device=SD-1,grid=g1,kind=telemetry,site=demo "
        f"temp_c=21.5,battery_pct=90i,seq=1i {T0}",
        f'smoke,device=SD-1,grid=g1,kind=event,site=demo event="alarm",seq=2i {T0 + 1}',
    ]


async def test_gzip_body(recording_http_server):
    w = build_store(settings(recording_http_server.url, gzip=True))
    await w.write([smoke()])
    await w.close()
    [req] = recording_http_server.requests
    assert req.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(req.body).startswith(b"smoke,device=SD-1")


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, StorageRejected), (401, StorageUnavailable), (503, StorageUnavailable)],
)
async def test_error_statuses(recording_http_server, status, error):
    recording_http_server.script.append(status)
    w = build_store(settings(recording_http_server.url))
    with pytest.raises(error):
        await w.write([smoke()])
    await w.close()


def test_settings_refuse_missing_token():
    with pytest.raises(ValueError, match="token"):
        TimeSeriesSettings(backend="influxdb2", org="o", bucket="b")


async def test_unreachable_server_raises_unavailable():
    w = build_store(settings("http://127.0.0.1:9", write_timeout_s=1))
    with pytest.raises(StorageUnavailable):
        await w.write([smoke()])
    await w.close()


async def test_a_silent_server_times_out_as_unavailable():
    # Accepts the connection, never answers: the batch must go to the spool, not hang.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        w = build_store(settings(f"http://127.0.0.1:{port}", write_timeout_s=1))
        with pytest.raises(StorageUnavailable):
            await asyncio.wait_for(w.write([smoke()]), 10)
        await w.close()


async def test_a_written_batch_is_freed_without_waiting_for_the_garbage_collector(
    recording_http_server,
):
    # As for 1.x (test_storage_influx1.py): the cyclic collector is rare under load, so the
    # client must not keep request bodies alive in reference cycles.
    batch = [smoke(device=f"SD-{i}", seq=i) for i in range(5000)]
    kept = await bytes_kept_by_writes(build_store(settings(recording_http_server.url)), batch, 5)
    assert len(recording_http_server.requests) == 6
    body = len(recording_http_server.requests[-1].body)
    assert body > 300_000
    kept -= 5 * body  # what the recording server keeps of the requests it received
    assert kept < body, f"{kept} bytes still held after 5 writes of {body} bytes each"
