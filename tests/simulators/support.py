"""A recording subscriber on a real broker, for simulator tests."""

from __future__ import annotations

import re
import threading
import time
import uuid

import orjson
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

NATIVE_TOPIC = re.compile(
    r"^safety/[a-z0-9-]{1,32}/[a-z][a-z0-9_]{0,15}/[A-Za-z0-9_.-]{1,64}/"
    r"(telemetry|event|status|cmd_ack)$"
)


class Recorder:
    """Subscribes to everything and keeps (topic, payload) in arrival order."""

    def __init__(self, port: int, topics: tuple[str, ...] = ("#", "$oc/#")) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"rec-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self._ready.wait(10), "subscriber not ready"

    def _on_message(self, client: object, userdata: object, msg: paho.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload))

    def wait_for(self, count: int, timeout: float = 15.0) -> list[tuple[str, bytes]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.messages) >= count:
                    break
            time.sleep(0.02)
        time.sleep(0.2)  # anything extra that should not be there
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def check_native(topic: str, payload: bytes) -> dict[str, object]:
    """Assert the native contract and return the payload object."""
    assert NATIVE_TOPIC.match(topic), topic
    assert len(payload) <= 4096
    obj = orjson.loads(payload)
    assert isinstance(obj, dict)
    if topic.endswith("/status") and set(obj) == {"online"}:
        return obj  # a Last Will
    assert isinstance(obj["ts"], int) and obj["ts"] > 1_600_000_000_000
    assert isinstance(obj["seq"], int) and obj["seq"] >= 0
    return obj
