"""Serving the API inside the gateway's process: uvicorn, with the gateway owning signals."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI


class _EmbeddedServer(uvicorn.Server):
    """uvicorn inside the gateway: the gateway owns the signals and the shutdown order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def serve(
    app: FastAPI,
    host: str,
    port: int,
    started: Callable[[int], None],
    closing: Callable[[], object] | None = None,
) -> None:
    """Serve until cancelled; ``started(port)`` once it listens (the port it got, if 0).
    ``closing()`` runs when the stop begins: it must end the endless responses (live streams),
    which uvicorn would otherwise wait for and then cancel."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", access_log=False
    )
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            return
        await asyncio.sleep(0.05)
    started(server.servers[0].sockets[0].getsockname()[1] if server.servers else port)
    try:
        # Shielded: a cancelled gateway asks uvicorn to finish (lifespan shutdown included)
        # instead of cancelling it mid-request.
        await asyncio.shield(serving)
    finally:
        server.should_exit = True
        if closing is not None:
            closing()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(serving), 10)
