"""A store that never answers its close must not keep the gateway from exiting."""

from __future__ import annotations

import asyncio
import logging

import pytest

from gateway import app


async def test_a_close_that_never_returns_is_left_after_its_bound_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(app, "CLOSE_TIMEOUT_S", 0.2)
    never = asyncio.Event()
    caplog.set_level(logging.WARNING, logger="gateway.app")

    await asyncio.wait_for(app._close_within("database", never.wait()), 5)

    assert "closing the database took over" in caplog.text


async def test_a_close_that_fails_is_logged_and_the_next_close_still_runs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[str] = []

    async def broken() -> None:
        raise ConnectionResetError("peer went away")

    async def fine() -> None:
        closed.append("alarm database")

    caplog.set_level(logging.WARNING, logger="gateway.app")
    await app._close_within("database", broken())
    await app._close_within("alarm database", fine())

    assert "closing the database failed: peer went away" in caplog.text
    assert closed == ["alarm database"]
