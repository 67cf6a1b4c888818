"""Logins cannot be used against alarms or against workers: rate limits and off-loop checks.

Each client here is a real HTTP client of the app with its own source address (the ASGI
``client`` a server would see), over the real database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack

import httpx
import pytest

from api.app import create_app
from api.login_guard import LoginConfig
from gateway.registry import passwords
from tests.api.support import DEMO_PASSWORD, METRICS_TOKEN, Env

LOGIN = "/api/v1/auth/login"
WORKER = "zhang-min"

ClientAt = Callable[[str], httpx.AsyncClient]


@pytest.fixture
async def client_at(env: Env) -> AsyncIterator[ClientAt]:
    """``client_at("10.0.0.7")``: a client of one app, calling from that address."""
    # Small budgets so the tests reach them in a few argon2 checks; the behaviour is the same.
    env.services.config = dataclasses.replace(
        env.services.config,
        login=LoginConfig(
            address_burst=6,
            address_every_s=30,
            account_burst=3,
            account_every_s=60,
            refusal_delay_s=0.05,
        ),
    )
    app = create_app(env.services)
    async with AsyncExitStack() as stack:

        def make(address: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            client = httpx.AsyncClient(transport=transport, base_url="http://api.test")
            stack.push_async_callback(client.aclose)
            return client

        yield make
        await app.state.login_guard.aclose()


async def _login(client: httpx.AsyncClient, user: str, password: str) -> httpx.Response:
    return await client.post(LOGIN, data={"username": user, "password": password})


async def test_repeated_failures_get_429_with_retry_after_then_pass_after_waiting(
    client_at: ClientAt, env: Env
) -> None:
    guesser = client_at("203.0.113.5")
    statuses = [(await _login(guesser, WORKER, f"guess-{i}")).status_code for i in range(4)]
    assert statuses == [401, 401, 401, 429]
    # Limited means not checked at all: the right password gets no answer either.
    limited = await _login(guesser, WORKER, DEMO_PASSWORD)
    assert limited.status_code == 429
    retry = int(limited.headers["Retry-After"])
    assert 1 <= retry <= 60
    assert "access_token" not in limited.text
    env.clock.advance(retry * 1000)  # type: ignore[attr-defined]
    assert (await _login(guesser, WORKER, DEMO_PASSWORD)).status_code == 200
    # Operators see refusals on /metrics (they skip the per-request figures).
    metrics = await guesser.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert "api_login_refused_total 2.0" in metrics.text


async def test_one_address_trying_many_accounts_is_limited(client_at: ClientAt) -> None:
    sprayer = client_at("198.51.100.9")
    statuses = [(await _login(sprayer, f"user-{i}", "pw-123456")).status_code for i in range(7)]
    assert statuses[:6] == [401] * 6
    assert statuses[6] == 429


async def test_worker_logs_in_from_own_address_while_another_floods_the_account(
    client_at: ClientAt,
) -> None:
    attacker, worker = client_at("203.0.113.66"), client_at("192.168.1.23")
    flood = [(await _login(attacker, WORKER, f"wrong-{i}")).status_code for i in range(8)]
    assert flood[-1] == 429
    # The attacker's budget is spent, even with the right password ...
    assert (await _login(attacker, WORKER, DEMO_PASSWORD)).status_code == 429
    # ... but the worker's phone, on its own address, is not locked out.
    r = await _login(worker, WORKER, DEMO_PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["person"]["id"] == WORKER


async def test_password_checks_leave_the_event_loop_free(client_at: ClientAt) -> None:
    # How long one argon2 check holds whoever runs it, measured here on this machine.
    started = time.perf_counter()
    passwords.verify_password("wrong", passwords.hash_password("x-password"))
    one_check_s = (time.perf_counter() - started) / 2

    gaps: list[float] = []

    async def heartbeat(stop: asyncio.Event) -> None:
        last = time.perf_counter()
        while not stop.is_set():
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    stop = asyncio.Event()
    beat = asyncio.create_task(heartbeat(stop))
    await asyncio.sleep(0.01)
    clients = [client_at(f"10.1.0.{i}") for i in range(4)]
    results = await asyncio.gather(
        *(_login(c, WORKER, DEMO_PASSWORD if i % 2 else "wrong-one") for i, c in enumerate(clients))
    )
    stop.set()
    await beat
    assert [r.status_code for r in results] == [401, 200, 401, 200]
    # Four checks ran while the heartbeat kept beating: none of them held the loop.
    assert max(gaps) < one_check_s / 2, (
        f"the event loop stalled {max(gaps) * 1000:.0f} ms; one check takes {one_check_s * 1000:.0f} ms"
    )


async def test_a_dead_password_worker_does_not_stop_logins(client_at: ClientAt, env: Env) -> None:
    import os
    import signal

    client = client_at("192.168.1.50")
    assert (await _login(client, WORKER, DEMO_PASSWORD)).status_code == 200
    workers = client._transport.app.state.login_guard.workers  # type: ignore[attr-defined]
    killed = workers.pids
    for pid in killed:  # as the OOM killer would
        os.kill(pid, signal.SIGKILL)
    await asyncio.sleep(0.2)
    assert (await _login(client, WORKER, DEMO_PASSWORD)).status_code == 200
    assert workers.pids and set(workers.pids).isdisjoint(killed)


def test_worker_hashes_and_registry_hashes_are_interchangeable() -> None:
    from api import argon2_worker

    assert passwords.verify_password("pw-one-1", argon2_worker.hash_password("pw-one-1"))
    assert argon2_worker.verify("pw-two-2", passwords.hash_password("pw-two-2"))
    assert not argon2_worker.verify("pw-two-2", None)
