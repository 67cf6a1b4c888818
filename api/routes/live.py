"""Server-Sent Events: incident and device-status changes, limited to the caller's scope."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse

from api.deps import Principal, Scope, ServicesDep, SessionDep, scope_of, stream_principal
from gateway.live import LiveEvent, LiveHub

router = APIRouter(tags=["live"])
HEARTBEAT_S = 15.0


def _frame(event: LiveEvent) -> str:
    data = json.dumps(event.data, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind}\ndata: {data}\n\n"


async def _events(
    hub: LiveHub, scope: Scope, request: Request, limit: int | None
) -> AsyncIterator[str]:
    queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue()

    async def pump() -> None:
        async for event in hub.subscribe():
            queue.put_nowait(event)
        queue.put_nowait(None)  # the hub cut us off: end the stream, the client reconnects

    task = asyncio.create_task(pump())
    sent = 0
    try:
        yield "retry: 3000\nevent: hello\ndata: {}\n\n"
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
            if scope.sees(event.site, event.grid_id):
                sent += 1
                yield _frame(event)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@router.get("/live", response_class=StreamingResponse)
async def live(
    request: Request,
    principal: Annotated[Principal, Depends(stream_principal)],
    services: ServicesDep,
    session: SessionDep,
    limit: Annotated[
        int | None, Query(ge=1, le=10000, description="end after this many events")
    ] = None,
) -> StreamingResponse:
    """``text/event-stream`` of ``incident`` and ``device_status`` events (EventSource: pass
    ``?access_token=``). Events outside the caller's grids are never sent."""
    scope = await scope_of(principal, session)
    await session.close()  # the stream may last hours; do not hold a connection
    return StreamingResponse(
        _events(services.live, scope, request, limit),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
