"""SIGKILL the process while an incident awaits acknowledgement; after a restart the ladder
continues on schedule and nobody is paged twice (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import RecordingServer

ROOT = Path(__file__).resolve().parents[3]
DEADLINE_MS = 4000


def spawn(mode: str, db_url: str, url: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.alerting.escalation.escalation_proc",
            mode,
            db_url,
            f"{url}/hook",
            str(DEADLINE_MS),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    return proc


def steps(rec: RecordingServer) -> list[tuple[str, str]]:
    out = []
    for r in rec.answered_ok():
        body: Any = r.json()
        out.append((body["notification"]["step"], body["notification"]["person"]))
    return sorted(out)


def sent_rows(db_url: str) -> int:
    from sqlalchemy import func, select

    from alerting.notify.tables import DeliveryRow, DeliveryStatus
    from core.db import make_engine

    async def count() -> int:
        engine = make_engine(db_url)
        try:
            async with engine.connect() as conn:
                stmt = select(func.count()).where(DeliveryRow.status == DeliveryStatus.SENT)
                return int((await conn.execute(stmt)).scalar_one())
        finally:
            await engine.dispose()

    return asyncio.run(count())


def wait_for(pred: Any, timeout: float) -> float:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return time.monotonic()
        time.sleep(0.02)
    pytest.fail("timed out")


@pytest.mark.slow
def test_sigkill_then_restart_keeps_escalating_on_schedule(
    db_url: str, recording_http_server: RecordingServer
) -> None:
    rec = recording_http_server
    first = spawn("open", db_url, rec.url)
    try:
        wait_for(lambda: len(steps(rec)) == 3, 10)
        opened_ms = int(rec.answered_ok()[0].json()["opened_at"])  # type: ignore[index]
        assert steps(rec) == [("0", "bl1"), ("0", "duty1"), ("0", "gw1")]
        # Killed once the pages are recorded as sent. (Killed between the far end accepting a
        # page and that record, the restarted process sends it again at once: a duplicate,
        # which the app drops by notification.key, rather than a page that might be lost.)
        wait_for(lambda: sent_rows(db_url) == 3, 10)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(5)
    second = spawn("resume", db_url, rec.url)
    try:
        arrived = wait_for(lambda: len(steps(rec)) == 5, 15)
        late_ms = time.time() * 1000 - (time.monotonic() - arrived) * 1000 - opened_ms
        assert steps(rec)[3:] == [("1", "bk1"), ("1", "sec1")]
        assert DEADLINE_MS - 100 <= late_ms <= DEADLINE_MS + 1500
        time.sleep(0.5)
        assert len(steps(rec)) == 5  # step 0 was not sent again after the restart
    finally:
        second.send_signal(signal.SIGKILL)
        second.wait(5)
        if second.stdout:
            second.stdout.close()
        if first.stdout:
            first.stdout.close()
