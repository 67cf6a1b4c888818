"""A publisher with its own aiomqtt connection, for notifier tests (the gateway shares its
own MQTT session with the notifier instead)."""

from __future__ import annotations

from types import TracebackType

import aiomqtt


class AiomqttPublisher:
    """A default publisher with its own aiomqtt connection (use as an async context manager)."""

    def __init__(
        self,
        hostname: str,
        port: int = 1883,
        *,
        identifier: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self._client = aiomqtt.Client(
            hostname, port, identifier=identifier, username=username, password=password
        )

    async def __aenter__(self) -> AiomqttPublisher:
        await self._client.__aenter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._client.__aexit__(exc_type, exc, tb)

    async def __call__(self, topic: str, payload: bytes, qos: int) -> None:
        await self._client.publish(topic, payload, qos=qos)
