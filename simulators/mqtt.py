"""MQTT links for simulated devices: paho clients wrapped once into awaitables (per device or shared)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Host and port of an ``mqtt://HOST:PORT`` URL."""

    host: str
    port: int

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url if "://" in url else f"mqtt://{url}")
        if parsed.scheme not in ("mqtt", "tcp"):
            raise ValueError(f"unsupported broker URL {url!r} (use mqtt://HOST:PORT)")
        return cls(parsed.hostname or "127.0.0.1", parsed.port or 1883)


@dataclass(frozen=True, slots=True)
class Will:
    """A Last Will: published by the broker when the link drops without a clean disconnect."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttLink:
    """One paho client on its own network thread, with awaitable connect and publish.

    ``track=False`` (load mode) skips per-message futures: publishes are counted as the broker
    acknowledges them (QoS 1) or as they are written (QoS 0), and ``publish_nowait`` applies
    back-pressure once ``max_outstanding`` messages are unacknowledged. ``manual=True`` drives
    the network from the publishing thread instead of paho's own thread: no wake-up write per
    message and no lock hand-over, which is what lets one process reach paho's ceiling.
    """

    def __init__(
        self,
        broker_url: str,
        client_id: str | None = None,
        will: Will | None = None,
        *,
        track: bool = True,
        manual: bool = False,
        count_acks: bool = True,
        max_inflight: int = 20,
        max_outstanding: int = 20_000,
    ) -> None:
        self.address = BrokerAddress.parse(broker_url)
        self.client_id = client_id or f"sim-{uuid.uuid4().hex[:12]}"
        self.track = track and not manual
        self.manual = manual
        self._pump_every = 20
        self.max_outstanding = max_outstanding
        self.sent = 0
        self.completed = 0
        self._lock = threading.Lock()
        self._futures: dict[int, asyncio.Future[None]] = {}
        self._early: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connected = threading.Event()
        self._client = paho.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=paho.MQTTv311,
        )
        self._client.max_inflight_messages_set(max_inflight)
        self._client.max_queued_messages_set(0)
        if will is not None:
            self._client.will_set(will.topic, will.payload, will.qos, will.retain)
        self._client.on_connect = self._on_connect
        # paho builds reason-code objects per callback; QoS 0 load runs do without it
        self.count_acks = count_acks or not manual
        if self.count_acks:
            self._client.on_publish = self._on_publish
        if manual:
            # queue publishes; this thread writes them in pump()
            self._client.on_socket_register_write = _ignore

    # -- callbacks (network thread) --------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            self._connected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with self._lock:
            self.completed += 1
            if not self.track:
                return
            fut = self._futures.pop(mid, None)
            if fut is None:
                self._early.add(mid)
        if fut is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, fut)

    # -- connection ------------------------------------------------------------------------

    def connect_sync(self, timeout: float = 10.0) -> None:
        """Connect and start the network thread (blocking)."""
        self._client.connect(self.address.host, self.address.port, keepalive=30)
        if self.manual:
            deadline = time.monotonic() + timeout
            while not self._connected.is_set() and time.monotonic() < deadline:
                self._client.loop(0.05)
            if not self._connected.is_set():
                raise TimeoutError(f"no CONNACK from {self.address} within {timeout}s")
            return
        self._client.loop_start()
        if not self._connected.wait(timeout):
            self._client.loop_stop()
            raise TimeoutError(f"no CONNACK from {self.address} within {timeout}s")

    async def connect(self) -> None:
        """Connect without blocking the event loop."""
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self.connect_sync)

    def close(self) -> None:
        """Clean disconnect: the broker discards the Last Will."""
        with contextlib.suppress(Exception):
            self._client.disconnect()
        if self.manual:
            with contextlib.suppress(Exception):
                self._client.loop(0.05)
            return
        self._client.loop_stop()

    def drop(self) -> None:
        """Lose the connection as a power cut would: no DISCONNECT, so the broker sends the Will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    # -- receiving (a device's commands) ---------------------------------------------------

    async def subscribe(
        self, topic: str, handler: Callable[[str, bytes], None], qos: int = 1
    ) -> None:
        """Subscribe and wait for the SUBACK; ``handler(topic, payload)`` runs on the loop."""
        loop = self._loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def on_message(client: Any, userdata: Any, msg: Any) -> None:
            loop.call_soon_threadsafe(handler, msg.topic, bytes(msg.payload))

        def on_subscribe(client: Any, userdata: Any, mid: int, rcs: Any, props: Any) -> None:
            loop.call_soon_threadsafe(_resolve, done)

        self._client.on_message = on_message
        self._client.on_subscribe = on_subscribe
        rc, _mid = self._client.subscribe(topic, qos)
        if rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"subscribe to {topic!r} failed: {paho.error_string(rc)}")
        await asyncio.wait_for(done, 10)

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Publish and wait until the broker has it (PUBACK for QoS 1, written for QoS 0)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = self._loop.create_future()
        info = self._client.publish(topic, payload, qos, retain)
        self.sent += 1
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic!r} failed: {paho.error_string(info.rc)}")
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                fut.set_result(None)
            else:
                self._futures[info.mid] = fut
        await asyncio.wait_for(fut, 30)

    def publish_nowait(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Queue a publish for load tests; waits (briefly) only when too much is outstanding."""
        while self.sent - self.completed >= self.max_outstanding:
            self._wait()
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {paho.error_string(info.rc)}")
        self.sent += 1
        if not self.count_acks:
            self.completed = self.sent
        if self.manual and self.sent % self._pump_every == 0:
            self._client.loop(0.0)

    def _wait(self) -> None:
        if self.manual:
            self._client.loop(0.001)
        else:
            time.sleep(0.0005)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until every queued publish is acknowledged; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.completed < self.sent or (self.manual and self._client.want_write()):
            if time.monotonic() > deadline:
                return False
            self._wait()
        return True


def _ignore(*_args: Any) -> None:
    return None


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def raw_publish(broker_url: str, topic: bytes, payload: bytes, timeout: float = 3.0) -> bool:
    """Send a hand-built MQTT 3.1.1 CONNECT + PUBLISH, bypassing client-side checks.

    Used by the hostile flood for what a well-behaved client refuses to send (wildcards in a
    publish topic, NUL bytes). Returns True when the broker closed the connection on it, which
    is what a conforming broker does (MQTT-3.3.2-2).
    """
    addr = BrokerAddress.parse(broker_url)
    client_id = f"sim-raw-{uuid.uuid4().hex[:8]}".encode()
    var_header = b"\x00\x04MQTT\x04\x02\x00\x1e"
    body = var_header + struct.pack("!H", len(client_id)) + client_id
    connect = b"\x10" + _remaining_length(len(body)) + body
    pub_body = struct.pack("!H", len(topic)) + topic + payload
    publish = b"\x30" + _remaining_length(len(pub_body)) + pub_body
    with socket.create_connection((addr.host, addr.port), timeout) as sock:
        sock.sendall(connect)
        if sock.recv(4)[:1] != b"\x20":
            return False
        sock.sendall(publish + b"\xc0\x00")  # PINGREQ: answered only if the publish was accepted
        try:
            answer = sock.recv(2)
        except (TimeoutError, ConnectionError):
            return True
        return answer != b"\xd0\x00"


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
