"""A scenario takes its devices over from a running fleet while it plays.

The demo's fleet simulates every device of the sample community; a scenario plays some of
the same devices. Without a hand-over the fleet keeps them alive (a "power loss" never goes
silent, a hot charging port is cooled by the fleet's next normal reading). The scenario
publishes a retained claim on ``safety-sim/{site}/claims/{run}`` (outside the gateway's
``safety/#``): the devices and the wall-clock time until which the fleet leaves them alone;
it clears the claim when it ends.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from simulators.mqtt import BrokerAddress


def claim_topic(site: str, run: str = "+") -> str:
    return f"safety-sim/{site}/claims/{run}"


def claim_payload(devices: Iterable[str], until_wall_ms: int) -> bytes:
    return json.dumps({"devices": sorted(devices), "until_wall_ms": until_wall_ms}).encode()


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Claims:
    """The fleet's side: which devices scenarios hold now (a paho thread of its own)."""

    def __init__(self, broker_url: str, site: str) -> None:
        self.address = BrokerAddress.parse(broker_url)
        self.site = site
        self._held: dict[str, dict[str, int]] = {}  # run -> device -> until wall ms
        self._lock = threading.Lock()
        self._client = paho.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                   client_id=f"sim-claims-{uuid.uuid4().hex[:8]}",
                                   protocol=paho.MQTTv311)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    def start(self) -> None:
        self._client.connect(self.address.host, self.address.port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def holds(self, device_id: str) -> bool:
        if not self._held:
            return False
        now = time.time_ns() // 1_000_000
        with self._lock:
            return any(held.get(device_id, 0) > now for held in self._held.values())

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        if not rc.is_failure:
            client.subscribe(claim_topic(self.site), qos=1)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        run = str(msg.topic).rsplit("/", 1)[-1]
        try:
            data = json.loads(msg.payload) if msg.payload else {}
            until = int(data.get("until_wall_ms", 0))
            devices = [str(d) for d in data.get("devices", [])]
        except (ValueError, TypeError, AttributeError):
            return  # not a claim: nothing held
        with self._lock:
            if devices:
                self._held[run] = dict.fromkeys(devices, until)
            else:
                self._held.pop(run, None)
