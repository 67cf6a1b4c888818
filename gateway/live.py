"""Live changes for the duty board: incident and device-status events fanned out to subscribers."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class LiveEvent:
    id: int
    kind: str  # "incident" | "device_status" | "stats"
    site: str
    grid_id: str | None
    data: dict[str, Any]


class LiveHub:
    """In-process publish/subscribe. A slow subscriber is cut off, never the publisher.

    Subscribers that fall more than ``max_queue`` events behind are disconnected (their stream
    ends and the browser reconnects and reloads the list), so the pipeline never blocks on a
    board and nothing is silently skipped on a stream that stays open.
    """

    def __init__(self, max_queue: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[LiveEvent | None]] = set()
        self._ids = itertools.count(1)
        self._max_queue = max_queue
        self._closed = False

    def close(self) -> int:
        """End every stream (the service is stopping; pages reconnect to the next run) and
        refuse new ones. Returns how many streams were open."""
        self._closed = True
        open_streams = len(self._subscribers)
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()
        return open_streams

    def publish(self, kind: str, site: str, grid_id: str | None, data: dict[str, Any]) -> LiveEvent:
        event = LiveEvent(next(self._ids), kind, site, grid_id, data)
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_queue:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)
        return event

    async def subscribe(self) -> AsyncIterator[LiveEvent]:
        if self._closed:
            return
        queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)
