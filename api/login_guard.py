"""Logins that cannot delay alarms: argon2 off the event loop, and login rate limits.

The API shares its event loop with MQTT ingest and paging. One argon2 check holds the CPU for
~100 ms of wall time (and ~170 ms of CPU: its four lanes run as threads), so checks run in a
small pool of low-priority workers, and anonymous clients are limited before any check runs.

How the limits are keyed, and why (a worker must be able to log in during a fire):

- Per client address, every attempt counts: a flood from one address is refused with 429
  after a burst, before any argon2 work, whichever accounts it names.
- Per account *and* address, failures count: password guessing against an account is slowed
  down, but only for the address doing the guessing. There is deliberately no limit per
  account alone: anyone could use it to lock a grid worker out by failing logins in their
  name. The worker's own phone or the duty room's board has its own budget, and a successful
  login resets it.
- Residual risks, accepted: a guesser using many addresses gets each address's budget (argon2
  and the per-address limit keep that slow); an attacker sharing the worker's address (the
  same carrier NAT) can exhaust that address's budgets. Neither touches pages, which need no
  login, nor people already logged in (tokens live ``token_ttl_s``).
- Too many checks waiting for the pool at once (a flood from many addresses): 503 with
  Retry-After instead of an unbounded queue, so memory and waiting stay bounded.

Refusals must cost the event loop next to nothing, or a flood of 429s delays alarms as the
argon2 checks did (measured: 8 looping clients, ~700 refusals/s, alarm p99 ×1.7–2.2). So an
address over its budget is refused by :class:`LoginFloodGate` before routing, form parsing and
request metrics, and every refusal is answered late (``refusal_delay_s``, at most
``max_held`` at once): a client looping on the endpoint then sends one request per delay.
Every attempt takes from its address's budget, refused ones too, so a client that ignores
Retry-After soon meets the cheapest refusal.

Limits live in this process's memory: each gateway instance counts its own clients, and a
restart forgets them (both err on the side of letting people in).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from api import argon2_worker

log = logging.getLogger(__name__)

# Nice value of the workers: when alarms and password checks want the CPU at once, the
# scheduler gives it to the gateway (nice 0) and argon2 gets what is left.
WORKER_NICE = 15


class LoginBusy(Exception):
    """Too many password checks are waiting already; try again after ``retry_after_s``."""

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("too many password checks waiting")
        self.retry_after_s = retry_after_s


# -- the pool ----------------------------------------------------------------------------------


class _WorkerGone(Exception):
    """The worker process died (OOM killer, a signal) or closed its end."""


class _Worker:
    """One ``python -m api.argon2_worker`` process: a JSON request a line, an answer a line."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._next = 0

    @classmethod
    async def spawn(cls, nice: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            argon2_worker.__name__,
            str(nice),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        await worker._answer(-1)  # ready: imports done, priority set
        return worker

    async def call(self, request: dict[str, object]) -> object:
        assert self.process.stdin is not None
        self._next += 1
        ident = self._next
        try:
            self.process.stdin.write(json.dumps({**request, "id": ident}).encode() + b"\n")
            await self.process.stdin.drain()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _WorkerGone() from exc
        return await self._answer(ident)

    async def _answer(self, ident: int) -> object:
        # Answers to calls abandoned earlier (a client hung up mid-check) are skipped.
        assert self.process.stdout is not None
        while True:
            line = await self.process.stdout.readline()
            if not line:
                raise _WorkerGone()
            answer = json.loads(line)
            if answer.get("id") == ident:
                return answer.get("result")

    async def stop(self) -> None:
        if self.process.returncode is None and self.process.stdin is not None:
            self.process.stdin.close()  # the worker ends at the end of its input
        try:
            await asyncio.wait_for(self.process.wait(), 5)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


class PasswordWorkers:
    """argon2 hashing and checking in ``workers`` low-priority processes.

    Processes, not threads: measured with benchmarks/login_flood_bench.py (argon2 busy all
    the time), alarm p99 was ×3.9 the idle figure with a (niced) thread and ×1.5 with a
    process — argon2's 64 MiB allocations and page faults share the event loop's address
    space in a thread. Workers are started by exec (never a fork of the gateway with its
    threads and sockets) and spoken to over pipes on the event loop, so there is no
    executor thread and nothing outlives :meth:`aclose`. At most ``max_waiting`` calls wait
    for a free worker; beyond that :class:`LoginBusy`. A worker that dies is replaced.
    """

    def __init__(self, workers: int = 1, max_waiting: int = 16, nice: int = WORKER_NICE) -> None:
        if workers < 1 or max_waiting < 0:
            raise ValueError("workers must be at least 1 and max_waiting not negative")
        self.workers = workers
        self.max_waiting = max_waiting
        self.nice = nice
        self._all: list[_Worker] = []
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._starting = asyncio.Lock()
        self._inside = 0  # running or waiting

    @property
    def pids(self) -> list[int]:
        return [w.process.pid for w in self._all]

    async def start(self) -> None:
        """Start the worker processes (the application does at start-up)."""
        async with self._starting:
            while len(self._all) < self.workers:
                worker = await _Worker.spawn(self.nice)
                self._all.append(worker)
                self._idle.put_nowait(worker)

    async def _run(self, request: dict[str, object]) -> object:
        if self._inside >= self.workers + self.max_waiting:
            raise LoginBusy()
        self._inside += 1
        try:
            await self.start()
            worker = await self._idle.get()
            try:
                return await worker.call(request)
            except _WorkerGone:
                # Replaced, and the check tried once more: logins keep working rather than
                # failing until the gateway restarts.
                log.warning("password worker %d died; starting another", worker.process.pid)
                self._all.remove(worker)
                await worker.stop()
                worker = await _Worker.spawn(self.nice)
                self._all.append(worker)
                return await worker.call(request)
            finally:
                if worker in self._all:
                    self._idle.put_nowait(worker)
        finally:
            self._inside -= 1

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """Whether ``password`` matches; as slow for a missing hash as for a wrong password."""
        answer = await self._run({"op": "verify", "password": password, "hash": password_hash})
        return answer is True

    async def hash(self, password: str) -> str:
        answer = await self._run({"op": "hash", "password": password})
        if isinstance(answer, str):
            return answer
        raise RuntimeError("the password worker could not hash the password")

    async def aclose(self) -> None:
        """Stop the workers and wait until they have exited (no process left behind)."""
        workers, self._all = self._all, []
        self._idle = asyncio.Queue()
        await asyncio.gather(*(w.stop() for w in workers))


# -- the limits --------------------------------------------------------------------------------


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at_ms: int


class TokenBuckets:
    """One token bucket per key: ``burst`` at once, then one more every ``every_ms``.

    Memory stays bounded: past ``max_keys`` the least recently used buckets are dropped (a
    dropped key starts afresh, which only ever errs towards letting someone in).
    """

    def __init__(self, burst: int, every_ms: int, max_keys: int = 10_000) -> None:
        self.burst = burst
        self.every_ms = every_ms
        self.max_keys = max_keys
        self._buckets: dict[object, _Bucket] = {}

    def _level(self, bucket: _Bucket, now_ms: int) -> float:
        grown = max(0, now_ms - bucket.at_ms) / self.every_ms
        return min(float(self.burst), bucket.tokens + grown)

    def wait_ms(self, key: object, now_ms: int) -> int:
        """0 when ``key`` may go now, else how long until it may."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0
        level = self._level(bucket, now_ms)
        return 0 if level >= 1 else math.ceil((1 - level) * self.every_ms)

    def take(self, key: object, now_ms: int) -> None:
        bucket = self._buckets.pop(key, None)
        level = float(self.burst) if bucket is None else self._level(bucket, now_ms)
        self._buckets[key] = _Bucket(max(0.0, level - 1), now_ms)  # now the most recent key
        while len(self._buckets) > self.max_keys:
            del self._buckets[next(iter(self._buckets))]

    def forget(self, key: object) -> None:
        self._buckets.pop(key, None)


@dataclass(frozen=True)
class LoginConfig:
    """Per client address: ``address_burst`` attempts, then one every ``address_every_s``.
    Per account and address: ``account_burst`` failures, then one every ``account_every_s``.
    Checks run in ``argon2_workers`` processes, at most ``max_waiting`` waiting for them.
    Refusals are answered after ``refusal_delay_s`` (at most ``max_held`` held at once;
    beyond that at once)."""

    address_burst: int = 20
    address_every_s: float = 6.0
    account_burst: int = 5
    account_every_s: float = 60.0
    argon2_workers: int = 1
    max_waiting: int = 16
    refusal_delay_s: float = 2.0
    max_held: int = 256


class LoginLimiter:
    """Decides whether a login attempt may even be checked (see the module docstring)."""

    def __init__(self, config: LoginConfig) -> None:
        self._addresses = TokenBuckets(config.address_burst, int(config.address_every_s * 1000))
        self._accounts = TokenBuckets(config.account_burst, int(config.account_every_s * 1000))

    def address_retry_after_s(self, address: str, now_ms: int) -> int:
        """0 if the address is within its budget, else whole seconds to wait (Retry-After)."""
        return math.ceil(self._addresses.wait_ms(address, now_ms) / 1000)

    def retry_after_s(self, account: str, address: str, now_ms: int) -> int:
        """0 if this attempt may be checked, else whole seconds to wait (Retry-After)."""
        wait = max(
            self._addresses.wait_ms(address, now_ms),
            self._accounts.wait_ms((account, address), now_ms),
        )
        return math.ceil(wait / 1000)

    def attempted(self, address: str, now_ms: int) -> None:
        self._addresses.take(address, now_ms)

    def failed(self, account: str, address: str, now_ms: int) -> None:
        self._accounts.take((account, address), now_ms)

    def succeeded(self, account: str, address: str) -> None:
        self._accounts.forget((account, address))


class LoginGuard:
    """What the login route consults: the limits and the password workers."""

    def __init__(self, config: LoginConfig, on_refused: Callable[[], None] = lambda: None) -> None:
        self.config = config
        self.limiter = LoginLimiter(config)
        self.workers = PasswordWorkers(config.argon2_workers, config.max_waiting)
        self.on_refused = on_refused  # counted in /metrics: refusals skip the request metrics
        self._held = 0

    async def hold(self, retry_after_s: int) -> None:
        """Wait before answering a refusal (see the module docstring); at once when
        ``max_held`` refusals are being held already."""
        self.on_refused()
        if self._held >= self.config.max_held:
            return
        self._held += 1
        try:
            await asyncio.sleep(min(float(retry_after_s), self.config.refusal_delay_s))
        finally:
            self._held -= 1

    async def aclose(self) -> None:
        await self.workers.aclose()


LIMITED_DETAIL = "too many login attempts: try again later"


class LoginFloodGate:
    """ASGI middleware: a login from an address over its budget gets its 429 here, before
    routing, form parsing and the request metrics (the cheapest answer the API has)."""

    def __init__(
        self, app: ASGIApp, guard: LoginGuard, path: str, now_ms: Callable[[], int]
    ) -> None:
        self.app = app
        self.guard = guard
        self.path = path
        self.now_ms = now_ms
        self._body = json.dumps({"detail": LIMITED_DETAIL}).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        address = client[0] if client else "-"
        limiter = self.guard.limiter
        now = self.now_ms()
        wait_s = limiter.address_retry_after_s(address, now)
        if not wait_s:
            await self.app(scope, receive, send)
            return
        limiter.attempted(address, now)
        await self.guard.hold(wait_s)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
            (b"retry-after", str(wait_s).encode()),
        ]
        await send({"type": "http.response.start", "status": 429, "headers": headers})
        await send({"type": "http.response.body", "body": self._body})
