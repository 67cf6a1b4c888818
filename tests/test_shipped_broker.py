"""The broker configuration shipped under deploy/mosquitto, run for real: a Mosquitto started
with that mosquitto.conf and the committed ACL (container paths moved under a temporary
directory, each listener on a free local port, password files made with mosquitto_passwd),
wired as docker-compose.yml wires it, and real MQTT clients (paho) as gateway, devices and
worker apps."""

from __future__ import annotations

import getpass
import queue
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from tests.services import free_port, make_tls_files, wait_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "deploy" / "mosquitto"
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text(encoding="utf-8"))
GATEWAY_CONFIG = yaml.safe_load((ROOT / "deploy" / "gateway.yaml").read_text(encoding="utf-8"))

# Accounts of the sample community (deploy/mosquitto/acl is generated from it).
GATEWAY = ("gateway", "gw-secret-0123456789")
DEVICE = ("smk-s1", "smk-s1-secret")
OTHER_DEVICE = ("smk-s2", "smk-s2-secret")
WORKER = ("zhang-min", "zhang-min-secret")
OTHER_WORKER = ("li-qiang", "li-qiang-secret")
DEVICE_TOPIC = "safety/demo/smoke/smk-s1/telemetry"

TIMEOUT = 10.0
QUIET = 1.0  # how long "nothing arrives" is watched after a later message did arrive


def gateway_client_ids() -> list[str]:
    """The client ids deploy/gateway.yaml's gateway connects with: its bulk connection and its
    alarm connection (``MqttSettings.client_ids``, spelled out so that this file judges the
    broker configuration alone)."""
    client_id = str(GATEWAY_CONFIG["mqtt"]["client_id"])
    return [client_id, f"{client_id}-alarms"]


def compose_ports() -> tuple[int, list[int]]:
    """(the port the compose gateway connects to, the ports published for devices and apps)."""
    url = COMPOSE["services"]["gateway"]["environment"]["SAFETY_MQTT__URL"]
    gateway_port = urlsplit(url).port or 1883
    published = [int(str(p).rsplit(":", 1)[-1]) for p in COMPOSE["services"]["mosquitto"]["ports"]]
    return gateway_port, published


class ShippedBroker:
    """deploy/mosquitto/mosquitto.conf as shipped, run here.

    Everything the file says is kept; only what belongs to the container changes: paths under
    ``/mosquitto/`` move under ``root`` (so ``/mosquitto/config/passwd`` is
    ``root/config/passwd``), and each ``listener PORT`` listens on a free port of 127.0.0.1
    (``self.port(PORT)``). ``passwords`` maps a password file's name to its accounts.
    """

    def __init__(self, root: Path, passwords: dict[str, dict[str, str]]) -> None:
        self.root = root
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("config", "data", "certs"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        for name, accounts in passwords.items():
            path = root / "config" / name
            path.write_text("")
            for user, password in accounts.items():
                subprocess.run(
                    ["mosquitto_passwd", "-b", str(path), user, password],
                    check=True,
                    capture_output=True,
                )
        shutil.copy(SHIPPED / "acl", root / "config" / "acl")
        # The certificate step of deploy/mosquitto/README.md, with a throw-away CA.
        self.ca_file, cert, key = make_tls_files(root)
        shutil.copy(cert, root / "certs" / "server.crt")
        shutil.copy(key, root / "certs" / "server.key")

        self.ports: dict[int, int] = {}
        self.conf = root / "mosquitto.conf"
        self.log = root / "mosquitto.log"

    def _write_conf(self) -> None:
        """The shipped file with container paths under ``root`` and fresh local ports."""

        def local_listener(m: re.Match[str]) -> str:
            self.ports[int(m[1])] = free_port()
            return f"listener {self.ports[int(m[1])]} 127.0.0.1"

        text = (SHIPPED / "mosquitto.conf").read_text(encoding="utf-8")
        text = text.replace("/mosquitto/", f"{self.root}/")
        text = re.sub(r"(?m)^listener\s+(\d+)(?:\s+\S+)?\s*$", local_listener, text)
        # Started as root, Mosquitto would drop to user "mosquitto" and lose these files.
        self.conf.write_text(
            f"user {getpass.getuser()}\nlog_dest file {self.log}\n{text}", encoding="utf-8"
        )

    def port(self, shipped_port: int) -> int:
        assert shipped_port in self.ports, (
            f"deploy/mosquitto/mosquitto.conf has no listener on {shipped_port} "
            f"(it has {sorted(self.ports)})"
        )
        return self.ports[shipped_port]

    def start(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        # A free port can be taken by another process before Mosquitto binds it (other test
        # runs share this machine): then it exits, and it is started again on fresh ports.
        for _attempt in range(3):
            self._write_conf()
            self.proc = subprocess.Popen([binary, "-c", str(self.conf)], stderr=subprocess.PIPE)
            if self._listening(timeout=10):
                return
            self.proc.kill()
            self.proc.wait(10)
        _, err = self.proc.communicate(timeout=10)
        log = self.log.read_text(errors="replace") if self.log.exists() else ""
        raise AssertionError(f"the shipped mosquitto.conf did not start: {err!r}\n{log}")

    def _listening(self, timeout: float) -> bool:
        assert self.proc is not None
        pending = set(self.ports.values())
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                wait_port(min(pending), timeout=0.1)
                pending.discard(min(pending))
            except TimeoutError:
                pass
        return not pending and self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Account:
    """One MQTT 5 connection made with an account's credentials; records what reaches it."""

    def __init__(
        self,
        port: int,
        account: tuple[str, str],
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry_s: int = 0,
        ca_file: Path | None = None,
    ) -> None:
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.client.username_pw_set(*account)
        if ca_file is not None:
            self.client.tls_set(ca_certs=str(ca_file))  # verifies the chain and the host name
        self.messages: list[tuple[str, bytes]] = []
        self._arrived = threading.Condition()
        self._connack: queue.Queue[tuple[ReasonCode, bool]] = queue.Queue()
        self._suback: queue.Queue[int] = queue.Queue()
        self.kicked = threading.Event()

        def on_connect(_c, _u, flags, rc, _p) -> None:  # type: ignore[no-untyped-def]
            self._connack.put((rc, bool(flags.session_present)))

        def on_disconnect(_c, _u, _f, _rc, _p) -> None:  # type: ignore[no-untyped-def]
            self.kicked.set()

        def on_message(_c, _u, msg) -> None:  # type: ignore[no-untyped-def]
            with self._arrived:
                self.messages.append((msg.topic, msg.payload))
                self._arrived.notify_all()

        self.client.on_connect = on_connect
        self.client.on_disconnect = on_disconnect
        self.client.on_message = on_message
        self.client.on_subscribe = lambda _c, _u, mid, _rc, _p: self._suback.put(mid)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry_s
        self.client.connect("127.0.0.1", port, clean_start=clean_start, properties=props)
        self.client.loop_start()
        reason, self.session_present = self._connack.get(timeout=TIMEOUT)
        self.refused = reason.is_failure
        if self.refused:
            self.close()

    def subscribe(self, *topics: str) -> None:
        for topic in topics:
            _, mid = self.client.subscribe(topic, qos=1)
            assert self._suback.get(timeout=TIMEOUT) == mid

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(TIMEOUT)

    def wait_for(self, count: int, timeout: float = TIMEOUT) -> list[tuple[str, bytes]]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[ShippedBroker]:
    devices_and_workers = dict([DEVICE, OTHER_DEVICE, WORKER, OTHER_WORKER])
    # The gateway account is in both files, as after an upgrade from the one-file layout:
    # even so no account may act as the gateway's sessions.
    server = ShippedBroker(
        tmp_path / "broker",
        {
            "passwd": {**devices_and_workers, GATEWAY[0]: GATEWAY[1]},
            "gateway.passwd": dict([GATEWAY]),
        },
    )
    server.start()
    yield server
    server.stop()


# -- finding 2: a device credential must not take over the gateway's session ---------------


@pytest.mark.parametrize("client_id", gateway_client_ids())
def test_a_device_cannot_take_over_the_gateways_session(
    broker: ShippedBroker, client_id: str
) -> None:
    gateway_port, device_ports = compose_ports()
    gw_port = broker.port(gateway_port)
    gateway = Account(gw_port, GATEWAY, client_id, session_expiry_s=3600)
    assert not gateway.refused
    gateway.subscribe("safety/#")
    gateway.close()

    device = Account(broker.port(device_ports[0]), DEVICE, "smk-s1")
    for seq in range(5):
        device.publish(DEVICE_TOPIC, f'{{"seq": {seq}}}'.encode())  # queued for the gateway
    device.close()

    for port in device_ports:
        ca = broker.ca_file if port == 8883 else None
        # Resume the gateway's session (its queued messages) ...
        thief = Account(
            broker.port(port),
            OTHER_DEVICE,
            client_id,
            clean_start=False,
            session_expiry_s=3600,
            ca_file=ca,
        )
        assert thief.refused or not thief.session_present, (
            f"a device resumed the gateway's session {client_id!r} on listener {port}"
        )
        thief.close()
        # ... or wipe it with a clean start.
        Account(broker.port(port), OTHER_DEVICE, client_id, ca_file=ca).close()
    # The gateway's own listener does not take device credentials at all.
    assert Account(gw_port, OTHER_DEVICE, client_id, clean_start=False).refused

    gateway = Account(gw_port, GATEWAY, client_id, clean_start=False, session_expiry_s=3600)
    try:
        assert gateway.session_present, "the gateway's persistent session is gone"
        got = gateway.wait_for(5)
        assert [p for _t, p in got] == [f'{{"seq": {s}}}'.encode() for s in range(5)]

        # Connected, it is not kicked off by a device using its client id either.
        Account(broker.port(device_ports[0]), OTHER_DEVICE, client_id).close()
        assert not gateway.kicked.wait(QUIET), "a device disconnected the gateway"
    finally:
        gateway.close()


def test_the_gateways_listener_is_not_published_for_devices() -> None:
    gateway_port, device_ports = compose_ports()
    assert gateway_port not in device_ports


# -- finding 7: each worker app receives its own pages and nobody else's -------------------


def test_a_worker_receives_only_their_own_pages(broker: ShippedBroker) -> None:
    gateway_port, device_ports = compose_ports()
    app_port = broker.port(device_ports[0])
    own = Account(app_port, WORKER, "app-zhang-min")
    other = Account(app_port, OTHER_WORKER, "app-li-qiang")
    try:
        own.subscribe("safety/demo/workers/zhang-min/incidents", "safety/demo/smoke/#")
        other.subscribe(
            "safety/demo/workers/zhang-min/incidents",  # someone else's pages, by name
            "safety/+/workers/#",  # everybody's pages
        )
        # A worker cannot forge a page to another, nor read device traffic.
        other.publish("safety/demo/workers/zhang-min/incidents", b'{"forged": true}')
        device = Account(app_port, DEVICE, "smk-s1")
        device.publish(DEVICE_TOPIC, b'{"seq": 1}')
        device.close()

        gateway = Account(broker.port(gateway_port), GATEWAY, gateway_client_ids()[1])
        gateway.publish("safety/demo/workers/zhang-min/incidents", b'{"incident": 1}')
        gateway.publish("safety/demo/workers/li-qiang/incidents", b'{"incident": 2}')
        gateway.close()

        assert other.wait_for(1) == [("safety/demo/workers/li-qiang/incidents", b'{"incident": 2}')]
        assert own.wait_for(1) == [("safety/demo/workers/zhang-min/incidents", b'{"incident": 1}')]
        # The later page reached li-qiang, so zhang-min's would have by now.
        assert other.wait_for(2, QUIET) == [
            ("safety/demo/workers/li-qiang/incidents", b'{"incident": 2}')
        ]
        assert own.wait_for(2, QUIET) == [
            ("safety/demo/workers/zhang-min/incidents", b'{"incident": 1}')
        ]
    finally:
        own.close()
        other.close()


# -- finding 8: a TLS listener and a bounded queue ----------------------------------------


def test_devices_connect_over_tls_on_8883(broker: ShippedBroker) -> None:
    gateway_port, device_ports = compose_ports()
    assert 8883 in device_ports, "docker-compose.yml publishes the TLS listener"
    gateway = Account(broker.port(gateway_port), GATEWAY, gateway_client_ids()[0])
    gateway.subscribe("safety/#")
    device = Account(broker.port(8883), DEVICE, "smk-s1", ca_file=broker.ca_file)
    try:
        assert not device.refused
        device.publish(DEVICE_TOPIC, b'{"seq": 42}')
        assert gateway.wait_for(1) == [(DEVICE_TOPIC, b'{"seq": 42}')]
    finally:
        device.close()
        gateway.close()


def _options() -> dict[str, str]:
    found: dict[str, str] = {}
    for line in (SHIPPED / "mosquitto.conf").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition(" ")
            found.setdefault(key, value.strip())
    return found


def test_the_queue_of_each_session_is_bounded_as_documented() -> None:
    options = _options()
    messages, payload_bytes = int(options["max_queued_messages"]), int(options["max_queued_bytes"])
    assert messages > 0, "an unbounded queue lets one offline session exhaust the broker's memory"
    assert payload_bytes > 0, "a flood of large payloads must not exhaust the broker's memory"
    readme = (SHIPPED / "README.md").read_text(encoding="utf-8")
    assert f"max_queued_messages {messages}" in readme
    assert f"max_queued_bytes {payload_bytes}" in readme
    assert options["set_tcp_nodelay"] == "true"
