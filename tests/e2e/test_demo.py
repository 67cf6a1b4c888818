"""`safety-gateway demo` on its own: broker, stores, sample community and fleet; its readings can be
queried through the API; Ctrl-C stops every process it started."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port


@pytest.mark.slow
# auto takes the Mosquitto the test command installs; amqtt is what a machine with only Python
# gets (MQTT 3.1.1, in the gateway's own process).
@pytest.mark.parametrize("embedded_broker", ["auto", "amqtt"])
def test_demo_serves_the_fleets_readings_and_stops_cleanly(
    tmp_path: Path, embedded_broker: str
) -> None:
    api_port, broker_port = free_port(), free_port()
    out = tmp_path / "demo.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway", "demo", "--data-dir", str(tmp_path / "demo"),
         "--port", str(api_port), "--broker-port", str(broker_port),
         "--embedded-broker", embedded_broker],
        stdout=out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in out.read_text(errors="replace"):
            assert proc.poll() is None, out.read_text(errors="replace")
            assert time.monotonic() < deadline, "the demo did not print where to look"
            time.sleep(0.2)
        banner = out.read_text(encoding="utf-8")
        assert f"mqtt://127.0.0.1:{broker_port}" in banner
        expected = "amqtt" if embedded_broker == "amqtt" else "mosquitto"
        assert f"MQTT broker ({expected})" in banner, banner
        assert "ERROR" not in banner, banner
        board = re.search(r"(http://127\.0\.0\.1:\d+)/board/", banner)
        assert board is not None, banner
        api = board.group(1)

        with httpx.Client(base_url=api, timeout=10) as client:
            token = client.post("/api/v1/auth/login",
                                data={"username": "duty-sun", "password": "yangguang-demo"})
            assert token.status_code == 200, token.text
            headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
            # The fleet announces every device online first; then real-life traffic follows.
            deadline = time.monotonic() + 60
            status: dict = {}  # type: ignore[type-arg]
            while time.monotonic() < deadline:
                r = client.get("/api/v1/devices/demo/chg-s1-01/status", headers=headers)
                assert r.status_code == 200, r.text
                status = r.json()
                if status["online"] and status["fields"]:
                    break
                time.sleep(1)
            assert status["online"] is True, status
            assert status["last_seen_ms"] is not None
            assert "online" in status["fields"], "the reading is in the time-series store"
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    assert code == 0, out.read_text(errors="replace")[-3000:]
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the demo left its broker or fleet running"
