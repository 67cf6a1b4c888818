"""The demo's embedded MQTT broker: Mosquitto when installed, otherwise amqtt in-process."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import logging
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _bindable(port: int) -> bool:
    """Whether a server can listen on ``port`` now. SO_REUSEADDR as every server sets it: a
    port whose last connections linger in TIME_WAIT (the previous run's board) is free."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


#: How far past a taken preferred port the demo looks for a free one.
PORT_SEARCH = 20


def free_port(preferred: int | None = None) -> int:
    """``preferred`` if a server can listen on it, else the next free port after it (so a
    restarted demo keeps its addresses); without a preference any free port."""
    if preferred:
        for port in range(preferred, min(preferred + PORT_SEARCH, 65536)):
            if _bindable(port):
                return port
        raise OSError(
            f"ports {preferred}-{preferred + PORT_SEARCH - 1} are all taken; pick another one"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EmbeddedBroker:
    """Start a broker for the demo; ``kind`` says which one ran ("mosquitto" or "amqtt").

    ``prefer="auto"`` takes Mosquitto when installed (faster, MQTT 5) and amqtt otherwise (a
    fresh machine with only Python); "mosquitto" or "amqtt" insists on one.
    """

    def __init__(self, workdir: Path, port: int, prefer: str = "auto") -> None:
        if prefer not in ("auto", "mosquitto", "amqtt"):
            raise ValueError(f"embedded broker {prefer!r}: expected auto, mosquitto or amqtt")
        self.workdir = workdir
        self.port = port
        self.prefer = prefer
        self.kind = ""
        self._proc: subprocess.Popen[bytes] | None = None
        self._amqtt: Any = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # Debian installs it in /usr/sbin, which is not on every user's PATH.
        binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin")
        if self.prefer == "amqtt" or (self.prefer == "auto" and not binary):
            await self._start_amqtt()
        elif binary:
            await self._start_mosquitto(binary)
        else:
            raise RuntimeError("Mosquitto was asked for but is not installed (apt install mosquitto)")

    async def _start_mosquitto(self, binary: str) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        conf.write_text(
            f"user {getpass.getuser()}\nlistener {self.port} 127.0.0.1\nallow_anonymous true\n"
            f"persistence true\npersistence_location {self.workdir}/\n"
            "max_queued_messages 0\nmax_inflight_messages 0\nset_tcp_nodelay true\n"
            f"log_dest file {self.workdir}/mosquitto.log\n"
        )
        # A session of its own: Ctrl-C in the terminal must not kill the broker under the
        # gateway (which would report a lost connection); the demo stops it last.
        self._proc = await asyncio.to_thread(
            subprocess.Popen, [binary, "-c", str(conf)], start_new_session=True
        )
        self.kind = "mosquitto"
        await self._wait()

    async def _start_amqtt(self) -> None:
        from amqtt.broker import Broker

        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
        self._amqtt = Broker(config)
        await self._amqtt.start()  # returns once it listens: no probe (amqtt logs one as an error)
        self.kind = "amqtt"

    async def _wait(self) -> None:
        for _ in range(200):
            with contextlib.suppress(OSError):
                _r, w = await asyncio.open_connection("127.0.0.1", self.port)
                w.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"the embedded broker did not listen on port {self.port}")

    async def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            await asyncio.to_thread(self._proc.wait, 10)
        if self._amqtt is not None:
            await self._amqtt.shutdown()
