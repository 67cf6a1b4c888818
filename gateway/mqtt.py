"""The gateway's MQTT session: paho driven by the asyncio loop, manual QoS 1 acknowledgement.

aiomqtt would hand us messages through a queue and acknowledge them on receipt; the gateway
must acknowledge a QoS 1 message only once it is stored, so a crash cannot lose it. This module
is the only one that knows paho: it wires paho's socket into the event loop (as aiomqtt does),
calls ``on_message`` synchronously for every message, and exposes ``ack`` and ``publish``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from gateway.settings import MqttSettings

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, bytes, int, int, bool], None]  # topic, payload, qos, mid, retain


def _unwired(topic: str, payload: bytes, qos: int, mid: int, retain: bool) -> None:
    raise RuntimeError("MqttSession.on_message was not set before the session ran")


PUBLISH = 0x30
PUBACK = 0x40


class _BufferedClient(paho.Client):
    """paho with a fast path for incoming PUBLISH packets and batched PUBACKs.

    paho reads each packet with several one-byte ``recv`` calls and builds an ``MQTTMessage``
    with a ``Properties`` object for it; at tens of thousands of messages a second that is most
    of the gateway's CPU (measured: benchmarks/ingest_bench.py --profile). Here the socket is
    read in large chunks, PUBLISH packets are parsed in place and handed to the gateway, and
    every other packet (CONNACK, SUBACK, PUBACK of our own publishes, PINGRESP, DISCONNECT) is
    fed to paho unchanged, which keeps owning the session, keepalive and outgoing messages.
    The gateway never sets a Topic Alias Maximum, so the broker sends full topics.
    """

    def __init__(self, *args: Any, on_publish_packet: MessageHandler, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._on_publish_packet = on_publish_packet
        self._v5_props = kwargs.get("protocol") == MQTTProtocolVersion.MQTTv5
        self._rbuf = bytearray()  # bytes from the socket, not yet parsed
        self._paho_buf = bytearray()  # one non-PUBLISH packet for paho to read
        self._eof = False

    def fill(self) -> bool:
        """Read what the socket has (one call); False when it had nothing to give."""
        sock = self._sock
        if sock is None:
            return False
        try:
            # Small chunks keep each event-loop turn short (~5 ms of messages), so the alarm
            # path and its database round trips are not held up behind a telemetry backlog.
            data = sock.recv(16_384)
        except (BlockingIOError, ssl.SSLWantReadError):
            return False
        except OSError:
            data = b""
        if not data:
            # Peer closed: let paho see the empty read and handle the lost connection.
            self._eof = True
            self.loop_read()
            return False
        self._rbuf += data
        # paho's keepalive counts received bytes; we read the socket, so we tell it.
        with self._msgtime_mutex:
            self._last_bytes_received = paho.time_func()
        return True

    def reset_buffers(self) -> None:
        """A new connection starts from a clean stream: leftovers of the old one are dropped
        (the broker resends whatever was not acknowledged)."""
        self._rbuf.clear()
        self._paho_buf.clear()
        self._eof = False

    def pump(self) -> None:
        """Handle every complete packet in the buffer."""
        data = bytes(self._rbuf)
        n = len(data)
        pos = 0
        while pos + 2 <= n:
            header = data[pos]
            i, length, mult = pos + 1, 0, 1
            while i < n:
                b = data[i]
                i += 1
                length += (b & 0x7F) * mult
                if b < 0x80:
                    break
                mult <<= 7
            else:
                break  # the length itself is incomplete
            end = i + length
            if end > n:
                break
            if header & 0xF0 == PUBLISH:
                try:
                    self._publish(header, data, i, end)
                except IndexError:
                    # A PUBLISH whose fields overrun its own length: the stream is not MQTT.
                    log.exception("malformed PUBLISH packet from the broker; reconnecting")
                    self.reset_buffers()
                    self._loop_rc_handle(paho.MQTT_ERR_PROTOCOL)
                    return
            else:
                self._paho_buf += data[pos:end]
                while self._paho_buf and self.loop_read() == paho.MQTT_ERR_SUCCESS:
                    pass
            pos = end
        del self._rbuf[:pos]

    def _publish(self, header: int, data: bytes, i: int, end: int) -> None:
        qos = (header >> 1) & 3
        topic_end = i + 2 + ((data[i] << 8) | data[i + 1])
        topic = data[i + 2 : topic_end].decode("utf-8", "replace")
        j = topic_end
        mid = 0
        if qos:
            mid = (data[j] << 8) | data[j + 1]
            j += 2
        if self._v5_props:
            plen, mult = 0, 1
            while True:
                b = data[j]
                j += 1
                plen += (b & 0x7F) * mult
                if b < 0x80:
                    break
                mult <<= 7
            j += plen
        self._on_publish_packet(topic, data[j:end], qos, mid, bool(header & 1))

    def ack_many(self, mids: list[int]) -> None:
        """Queue the PUBACKs of many QoS 1 messages as one write, in the order given."""
        if not mids or self._sock is None:
            return
        packet = b"".join(b"\x40\x02" + mid.to_bytes(2, "big") for mid in mids)
        self._packet_queue(PUBACK, packet, 0, 0)

    def _sock_recv(self, bufsize: int) -> bytes:
        buf = self._paho_buf
        if not buf:
            if self._eof:
                self._eof = False
                return b""
            raise BlockingIOError
        chunk = bytes(buf[:bufsize])
        del buf[:bufsize]
        return chunk


class MqttSession:
    """One persistent MQTT session, reconnecting until closed."""

    def __init__(
        self,
        settings: MqttSettings,
        subscriptions: Iterable[str],
        *,
        client_id: str | None = None,
        status_topic: str | None = None,
    ) -> None:
        self._settings = settings
        self._subscriptions = list(subscriptions)
        self._client_id = client_id or settings.client_id
        # Set by the owner before run(): where every received PUBLISH goes.
        self.on_message: MessageHandler = _unwired
        self._status_topic = status_topic
        self._v5 = settings.protocol == "5"
        self.connected = asyncio.Event()
        self._closing = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None
        self._loop_thread = 0
        self._paused = False
        self._confirm: dict[int, asyncio.Future[None]] = {}
        self._client = self._make_client()
        self.stats = {"connects": 0, "disconnects": 0, "received": 0}

    # -- construction -------------------------------------------------------------------------
    def _make_client(self) -> _BufferedClient:
        s = self._settings
        client = _BufferedClient(
            CallbackAPIVersion.VERSION2,
            on_publish_packet=self._on_publish_packet,
            client_id=self._client_id,
            protocol=MQTTProtocolVersion.MQTTv5 if self._v5 else MQTTProtocolVersion.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
            reconnect_on_failure=False,  # we own the reconnect loop
        )
        if s.username:
            client.username_pw_set(
                s.username, s.password.get_secret_value() if s.password else None
            )
        if s.use_tls:
            ctx = ssl.create_default_context(cafile=str(s.tls.ca_file) if s.tls.ca_file else None)
            if s.tls.cert_file:
                ctx.load_cert_chain(
                    str(s.tls.cert_file), str(s.tls.key_file) if s.tls.key_file else None
                )
            if s.tls.insecure:
                ctx.check_hostname = False
            client.tls_set_context(ctx)
        if self._status_topic:
            # Retained Last Will: the board sees the gateway itself go offline.
            client.will_set(self._status_topic, b'{"online": false}', qos=1, retain=True)
        client.max_inflight_messages_set(1000)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        return client

    # -- public API ---------------------------------------------------------------------------
    @property
    def client_id(self) -> str:
        return self._client_id

    def ack(self, mids: list[int]) -> None:
        """Acknowledge QoS 1 messages, in order, once what they carried is stored or quarantined.

        After a reconnect the broker resends what was not acknowledged (we keep our session),
        so acknowledgements for a connection that has gone are dropped, not sent on the new one.
        """
        if self.connected.is_set():
            self._client.ack_many(mids)

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        """Queue a message; paho sends it as soon as the socket can take it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise ConnectionError(f"MQTT publish to {topic} failed: {paho.error_string(info.rc)}")

    async def publish_confirmed(
        self, topic: str, payload: bytes, qos: int = 1, *, timeout_s: float = 10.0
    ) -> None:
        """Publish and wait until the broker has the message (PUBACK for QoS 1).

        Raises ``ConnectionError`` when not connected or not confirmed in time, so a
        notification is retried instead of being counted as sent.
        """
        if not self.connected.is_set():
            raise ConnectionError("not connected to the MQTT broker")
        assert self._loop is not None
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"MQTT publish to {topic} failed: {paho.error_string(info.rc)}")
        # Onto the wire now: paho would wait for the loop's writer callback, which can come
        # after a chunk of telemetry is handled (a page is worth that chunk's milliseconds).
        # The PUBACK is read by this same loop later, so the waiter below is in time.
        self._client.loop_write()
        if qos == 0:
            return
        future = self._confirm[info.mid] = self._loop.create_future()
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            raise ConnectionError(f"the broker did not confirm {topic} in {timeout_s}s") from None
        finally:
            self._confirm.pop(info.mid, None)

    def _on_publish(
        self, _c: paho.Client, _u: Any, mid: int, _rc: Any = None, _p: Any = None
    ) -> None:
        # The PUBACK is read by this same loop, so the waiter is always registered first;
        # an unknown mid is a fire-and-forget publish (e.g. the gateway's status).
        future = self._confirm.get(mid)
        if future is not None and not future.done():
            future.set_result(None)

    async def run(self) -> None:
        """Connect, and reconnect with backoff, until ``close()``."""
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._misc_task = asyncio.create_task(self._misc_loop())
        backoff = 0.5
        try:
            while not self._closing:
                try:
                    await self._connect_once()
                    backoff = 0.5
                    await self._wait_disconnected()
                except (OSError, ssl.SSLError) as exc:
                    log.warning(
                        "MQTT broker %s:%s unreachable: %s",
                        self._settings.host,
                        self._settings.port,
                        exc,
                    )
                if self._closing:
                    break
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 10.0)
        finally:
            self._misc_task.cancel()

    async def close(self) -> None:
        self._closing = True
        if self._status_topic and self.connected.is_set():
            self._client.publish(self._status_topic, b'{"online": false}', qos=1, retain=True)
            await asyncio.sleep(0.05)
        self._client.disconnect()
        self._disconnected_event().set()

    # -- connection ---------------------------------------------------------------------------
    async def _connect_once(self) -> None:
        s = self._settings
        props: Properties | None = None
        if self._v5:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.receive_maximum
        self._down = asyncio.Event()
        loop = asyncio.get_running_loop()
        # connect() does a blocking TCP (and TLS) handshake: keep it off the loop.
        if self._v5:
            await loop.run_in_executor(
                None,
                lambda: self._client.connect(
                    s.host, s.port, keepalive=s.keepalive_s, clean_start=False, properties=props
                ),
            )
        else:
            # 3.1.1 keeps its session through clean_session=False on the client instead.
            await loop.run_in_executor(
                None, lambda: self._client.connect(s.host, s.port, keepalive=s.keepalive_s)
            )

    async def _wait_disconnected(self) -> None:
        await self._disconnected_event().wait()

    def _disconnected_event(self) -> asyncio.Event:
        if not hasattr(self, "_down"):
            self._down = asyncio.Event()
        return self._down

    def _on_connect(self, client: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        if rc.is_failure:
            log.error("MQTT broker refused the connection: %s", rc)
            self._disconnected_event().set()
            return
        self.stats["connects"] += 1
        prefix = f"$share/{self._settings.shared_group}/" if self._settings.shared_group else ""
        topics: list[tuple[str, Any]] = []
        for t in self._subscriptions:
            # No-local: the gateway's own downlink (worker and command topics) never loops back.
            opts = SubscribeOptions(qos=1, noLocal=True) if self._v5 and not prefix else 1
            topics.append((prefix + t if not t.startswith("$") else t, opts))
        if topics:
            client.subscribe(topics)
        if self._status_topic:
            client.publish(self._status_topic, b'{"online": true}', qos=1, retain=True)
        self.connected.set()
        log.info(
            "MQTT connected to %s:%s, subscribed to %d filters",
            self._settings.host,
            self._settings.port,
            len(topics),
        )

    def _on_disconnect(self, _c: paho.Client, _u: Any, _f: Any, rc: Any, _p: Any = None) -> None:
        self.connected.clear()
        self.stats["disconnects"] += 1
        if not self._closing:
            log.warning("MQTT connection lost (%s); reconnecting", rc)
        self._disconnected_event().set()

    def _on_publish_packet(
        self, topic: str, payload: bytes, qos: int, mid: int, retain: bool
    ) -> None:
        self.stats["received"] += 1
        self.on_message(topic, payload, qos, mid, retain)

    # -- socket plumbing: paho's network loop run by the asyncio loop ---------------------------
    def pause_reading(self) -> None:
        """Stop reading this connection for a while (TCP and the broker hold what comes);
        used to give alarm handling the event loop while telemetry is heavy."""
        if not self._paused:
            self._paused = True
            if self._loop is not None and self._sock is not None:
                with contextlib.suppress(ValueError, OSError):
                    self._loop.remove_reader(self._sock)

    def resume_reading(self) -> None:
        if self._paused:
            self._paused = False
            if self._loop is not None and self._sock is not None:
                with contextlib.suppress(ValueError, OSError):
                    self._loop.add_reader(self._sock, self._read)

    def _on_socket_open(self, client: paho.Client, _u: Any, sock: Any) -> None:
        assert self._loop is not None
        self._sock = sock
        # Pages and acknowledgements are small writes: out at once, not held (Nagle) until
        # the broker acknowledges the previous segment, which its delayed ACK can hold 40 ms.
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._client.reset_buffers()
        if not self._paused:
            self._loop.call_soon_threadsafe(self._loop.add_reader, sock, self._read)

    def _on_socket_close(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._remove_fd, sock)

    def _remove_fd(self, sock: Any) -> None:
        assert self._loop is not None
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
            self._loop.remove_writer(sock)

    def _on_register_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            loop.add_writer(sock, self._write)
        else:  # during connect(), which runs in an executor thread
            loop.call_soon_threadsafe(loop.add_writer, sock, self._write)

    def _on_unregister_write(self, _c: paho.Client, _u: Any, sock: Any) -> None:
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_writer(sock)

    def _read(self) -> None:
        # One chunk per wake-up, so a busy socket cannot starve the rest of the loop.
        if self._client.fill():
            self._client.pump()

    def _write(self) -> None:
        self._client.loop_write()

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._client.loop_misc()
