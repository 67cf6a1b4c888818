"""Server-Sent Events: incident and device-status changes, limited to the caller's scope."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Principal, Scope, ServicesDep, SessionDep, scope_of, stream_principal
from gateway.live import LiveEvent, LiveHub

router = APIRouter(tags=["live"])
HEARTBEAT_S = 15.0


def _frame(event: LiveEvent) -> str:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


async def _events(
    hub: LiveHub, scope: Scope, request: Request, limit: int | None, last_id: int | None
) -> AsyncIterator[str]:
    queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()
    subscription = hub.subscribe()
    # Subscribed before the replay is read: nothing published in between can fall through.
    first = asyncio.ensure_future(anext(subscription, None))
    await asyncio.sleep(0)

    async def pump() -> None:
        event = await first
        while event is not None:
            queue.put_nowait(event)
            event = await anext(subscription, None)
        queue.put_nowait(None)  # the hub cut us off: end the stream, the client reconnects

    missed = hub.since(last_id) if last_id is not None else []
    task = asyncio.create_task(pump())
    sent = 0
    replayed = max((e.id for e in missed or ()), default=last_id or 0)
    try:
        yield "retry: 3000\nevent: hello\ndata: {}\n\n"
        if missed is None:  # too far behind, or another run's id: reload the lists
            # With the newest id, so the browser's next reconnect resumes from here.
            sent += 1
            replayed = hub.last_id
            yield f"id: {replayed}\nevent: reset\ndata: {{}}\n\n"
        for old in missed or ():
            if scope.sees(old.site, old.grid_id):
                sent += 1
                yield _frame(old)
        while limit is None or sent < limit:
            try:
                event = await asyncio.wait_for(queue.get(), HEARTBEAT_S)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ": ping\n\n"
                continue
            if event is None:
                return
            if event.id > replayed and scope.sees(event.site, event.grid_id):
                sent += 1
                yield _frame(event)
    finally:
        task.cancel()
        first.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await first
        await subscription.aclose()


@router.get("/live", response_class=StreamingResponse)
async def live(
    request: Request,
    principal: Annotated[Principal, Depends(stream_principal)],
    services: ServicesDep,
    session: SessionDep,
    limit: Annotated[
        int | None, Query(ge=1, le=10000, description="end after this many events")
    ] = None,
    last_event_id: Annotated[
        int | None,
        Query(ge=0, le=2**62, description="resume after this event (as the header)"),
    ] = None,
    last_event_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> StreamingResponse:
    """``text/event-stream`` of ``incident`` and ``device_status`` events (EventSource: pass
    ``?access_token=``). Events outside the caller's grids are never sent.

    A client that reconnects with ``Last-Event-ID`` (the header EventSource sends by itself,
    or ``?last_event_id=``) first gets every event it missed; if they are no longer kept, an
    ``event: reset`` tells it to reload its lists."""
    header = (last_event_header or "").strip()
    if last_event_id is None and header.isascii() and header.isdecimal():
        last_event_id = min(int(header), 2**62)
    scope = await scope_of(principal, session)
    await session.close()  # the stream may last hours; do not hold a connection
    return StreamingResponse(
        _events(services.live, scope, request, limit, last_event_id),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
