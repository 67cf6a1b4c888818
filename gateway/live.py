"""Live changes for the duty board: incident and device-status events fanned out to subscribers."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncGenerator
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

    def __init__(self, max_queue: int = 1000, replay: int = 5000) -> None:
        self._subscribers: set[asyncio.Queue[LiveEvent | None]] = set()
        # Ids grow across restarts too (they start from the boot time), so a client's
        # Last-Event-ID from before a restart is seen as a gap, never as "up to date".
        self._next = time.time_ns() // 1_000_000 * 1000
        self._max_queue = max_queue
        self._closed = False
        # The latest events, for a client that reconnects with Last-Event-ID (a phone whose
        # network dropped for a moment gets what it missed, not a hole).
        self._recent: deque[LiveEvent] = deque(maxlen=replay)

    def close(self) -> int:
        """End every stream (the service is stopping; pages reconnect to the next run) and
        refuse new ones. Returns how many streams were open."""
        self._closed = True
        open_streams = len(self._subscribers)
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()
        return open_streams

    def since(self, last_id: int) -> list[LiveEvent] | None:
        """Events after ``last_id``; None if some of them are no longer kept, or the id is
        not one of this run's: the client must reload its lists instead."""
        if last_id == self._next - 1:
            return []
        if last_id >= self._next:
            return None
        recent = self._recent
        if not recent or last_id < recent[0].id - 1:
            return None
        return [e for e in recent if e.id > last_id]

    @property
    def last_id(self) -> int:
        """The id of the latest event (or just below the first one to come)."""
        return self._next - 1

    def publish(self, kind: str, site: str, grid_id: str | None, data: dict[str, Any]) -> LiveEvent:
        event = LiveEvent(self._next, kind, site, grid_id, data)
        self._next += 1
        self._recent.append(event)
        for queue in list(self._subscribers):
            if queue.qsize() >= self._max_queue:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(event)
        return event

    async def subscribe(self) -> AsyncGenerator[LiveEvent, None]:
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
