"""The demo as a user runs it from the repository root (issue 11 items 6, 7 and 8):

- Ctrl-C with a board's live stream open stops everything within 3 s, one line per component,
  no traceback and no "connection lost" (item 7);
- restarted, it keeps its ports, although the stopped run's connections linger in TIME_WAIT,
  and its signing secret, so an open page stays logged in (item 6);
- `safety-gateway route-test` from the same directory reads the demo's database, and refuses
  to run (creating nothing) where there is none; the banner's `safety-sim` hint is a command
  that works from there (item 8).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from gateway.broker import free_port as demo_free_port
from tests.services import free_port

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent


def start_demo(cwd: Path, out: Path, api_port: int, broker_port: int,
               *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(VENV_BIN / "safety-gateway"), "demo", "--port", str(api_port),
         "--broker-port", str(broker_port), *extra],
        cwd=cwd, stdout=out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def wait_banner(proc: subprocess.Popen[bytes], out: Path) -> str:
    deadline = time.monotonic() + 90
    while "Ctrl-C" not in (text := out.read_text(errors="replace")):
        assert proc.poll() is None, text
        assert time.monotonic() < deadline, "the demo did not print where to look"
        time.sleep(0.2)
    return text


def ports_of(banner: str) -> tuple[int, int]:
    api = re.search(r"http://127\.0\.0\.1:(\d+)/board/", banner)
    broker = re.search(r"mqtt://127\.0\.0\.1:(\d+)", banner)
    assert api and broker, banner
    return int(api.group(1)), int(broker.group(1))


def login(api: str) -> str:
    r = httpx.post(f"{api}/api/v1/auth/login",
                   data={"username": "duty-sun", "password": "yangguang-demo"}, timeout=10)
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def open_live(api: str, token: str) -> threading.Event:
    """A board's live stream, read in a thread; the event is set once it is open."""
    opened = threading.Event()

    def read() -> None:
        try:
            with httpx.stream("GET", f"{api}/api/v1/live",
                              headers={"Authorization": f"Bearer {token}"},
                              timeout=httpx.Timeout(10, read=None)) as r:
                for _ in r.iter_lines():
                    opened.set()
        except httpx.HTTPError:
            pass

    threading.Thread(target=read, daemon=True).start()
    assert opened.wait(10), "the live stream did not open"
    return opened


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_ctrl_c_restart_and_cli_from_the_repository_root(tmp_path: Path) -> None:
    cwd = tmp_path / "checkout"  # a directory like the repository root: var/demo inside
    cwd.mkdir()
    api_port, broker_port = free_port(), free_port()
    out = tmp_path / "demo.out"
    proc = start_demo(cwd, out, api_port, broker_port)
    try:
        banner = wait_banner(proc, out)
        assert ports_of(banner) == (api_port, broker_port)
        api = f"http://127.0.0.1:{api_port}"
        token = login(api)
        open_live(api, token)

        # item 8: the hint runs from where the demo was started
        hint = re.search(r"Try a scenario:\s+(\S+) scenario", banner)
        assert hint is not None, banner
        assert (cwd / hint.group(1)).is_file(), banner

        # item 7: Ctrl-C in the terminal (SIGINT to the whole process group)
        began = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)
        code = proc.wait(15)
        took = time.monotonic() - began
    finally:
        kill_group(proc)
    text = out.read_text(errors="replace")
    stop = text[text.index("stopping the demo"):]
    assert code == 0, text[-3000:]
    assert took <= 3.0, f"stopped in {took:.1f} s:\n{stop}"
    for bad in ("Traceback", "CancelledError", "KeyboardInterrupt", "reconnecting",
                "connection lost", "ERROR"):
        assert bad not in text, f"{bad!r} in the demo's output:\n{text[-3000:]}"
    lines = [line.strip() for line in stop.splitlines()[1:] if line.strip()]
    assert lines == [
        "API and board stopped (1 live page(s) closed)",
        "MQTT sessions closed",
        "readings stored and acknowledged; alert state saved",
        "stores closed",
        "simulated fleet stopped",
        "MQTT broker (mosquitto) stopped",
    ], stop
    leftover = subprocess.run(["pgrep", "-s", str(proc.pid)], capture_output=True, text=True)
    assert leftover.stdout.strip() == "", "the demo left a process running"

    # item 6: the live stream's connection lingers in TIME_WAIT on the API port; a restart
    # still takes both ports, and the page's token is still good.
    out2 = tmp_path / "demo2.out"
    proc = start_demo(cwd, out2, api_port, broker_port, "--no-fleet")
    try:
        assert ports_of(wait_banner(proc, out2)) == (api_port, broker_port)
        me = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/auth/me",
                       headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert me.status_code == 200, me.text
        assert (cwd / "var/demo/api-secret").stat().st_mode & 0o077 == 0

        # item 8: route-test as the README shows it, from the same directory
        rt = subprocess.run(
            [str(VENV_BIN / "safety-gateway"), "route-test", "smk-b01-u1-f1", "smoke.alarm"],
            cwd=cwd, capture_output=True, text=True, timeout=60)
        assert rt.returncode == 0, rt.stderr
        assert "smoke.alarm (critical) at smk-b01-u1-f1, grid demo.g1" in rt.stdout, rt.stdout
        assert "[grid_worker]" in rt.stdout and "[duty_staff]" in rt.stdout, rt.stdout
        assert not (cwd / "var/gateway.db").exists()
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(15)
        finally:
            kill_group(proc)


def test_route_test_refuses_without_a_database_and_creates_none(tmp_path: Path) -> None:
    rt = subprocess.run(
        [str(VENV_BIN / "safety-gateway"), "route-test", "smk-b01-u1-f1", "smoke.alarm"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("SAFETY_")})
    assert rt.returncode == 2, (rt.stdout, rt.stderr)
    assert "no gateway database at" in rt.stderr and "--data-dir" in rt.stderr, rt.stderr
    assert list(tmp_path.iterdir()) == [], "route-test created files"

    empty = tmp_path / "empty.db"
    empty.touch()
    config = tmp_path / "gateway.yaml"
    config.write_text(f"mode: development\ndatabase: {{url: 'sqlite+aiosqlite:///{empty}'}}\n")
    rt = subprocess.run(
        [str(VENV_BIN / "safety-gateway"), "route-test", "--config", str(config),
         "smk-b01-u1-f1", "smoke.alarm"], capture_output=True, text=True, timeout=60)
    assert rt.returncode == 2, (rt.stdout, rt.stderr)
    assert "has no gateway schema" in rt.stderr, rt.stderr
    assert empty.stat().st_size == 0


def test_demo_ports_are_kept_or_the_next_free_ones() -> None:
    port = free_port()
    # a closed connection lingering in TIME_WAIT on the port does not make it taken
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen()
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end waits in TIME_WAIT
    client.close()
    server.close()
    assert demo_free_port(port) == port
    # a port in use: the next free one, not a random one
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", port))
        taken.listen()
        assert port < demo_free_port(port) <= port + 20


def test_the_banner_hint_from_the_repository_root(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.demo import sim_command

    monkeypatch.chdir(VENV_BIN.parent.parent)  # where scripts/demo runs it
    assert sim_command() == ".venv/bin/safety-sim"
