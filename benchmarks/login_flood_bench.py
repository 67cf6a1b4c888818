"""Smoke alarm → page latency while anonymous clients loop on the login endpoint.

    .venv/bin/python benchmarks/login_flood_bench.py [--clients 8] [--alarms 150] [--rounds 4]
        [--interval 0.1] [--addresses each|one|rotate] [--workers N]

Starts Mosquitto, influxd and the gateway (a separate process) over the load-test community,
as benchmarks/alarm_latency.py does, and measures alarm → first message on a worker's topic.
Phases alternate ``--rounds`` times: idle, then under a flood of ``--clients`` clients that
each loop on ``POST /api/v1/auth/login`` with wrong passwords for a grid worker. Addresses:
``each`` (default) gives every client a loopback address of its own (127.0.0.11…), so each
has its own per-address budget; ``one`` sends all from 127.0.0.1; ``rotate`` sends every
request from a fresh address (a flood from many addresses: every request gets through the
limits to an argon2 check, so the password workers are busy all the time). The flood runs in a process of its own, so its
Python does not hold this process's clock-reading threads. During each flood phase the
worker logs in with the right password from 127.0.0.2.

Prints p50/p99 per condition and their ratio to the idle baseline of this same run
(nearest-rank percentiles), the flood's request rate and answers.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

from _stack import Stack  # puts the repository on sys.path
from alarm_latency import Listener, measure

from gateway.registry.passwords import hash_password

PASSWORD = "bench-password-1"
WORKER = "worker-1"


def _source(addresses: str, client: int, n: int) -> str:
    if addresses == "one":
        return "127.0.0.1"
    if addresses == "each":
        return f"127.0.0.{11 + client}"
    return f"127.{10 + client}.{n // 250 % 250}.{n % 250 + 1}"


def flood(port: int, clients: int, addresses: str) -> None:
    """The flood process: ``clients`` threads looping on the login endpoint until stdin closes;
    then one JSON line of what they got."""
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop = threading.Event()

    def client(i: int) -> None:
        conn: http.client.HTTPConnection | None = None
        n = 0
        while not stop.is_set():
            n += 1
            if addresses == "rotate" and conn is not None:
                conn.close()
                conn = None
            source = (_source(addresses, i, n), 0)
            body = urllib.parse.urlencode({"username": WORKER, "password": f"wrong-{i}-{n}"})
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30,
                                                      source_address=source)
                conn.request("POST", "/api/v1/auth/login", body,
                             {"Content-Type": "application/x-www-form-urlencoded"})
                response = conn.getresponse()
                response.read()
                got = str(response.status)
                if response.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError as exc:
                got = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.01)
            with lock:
                statuses[got] += 1

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    sys.stdin.read()  # the parent closes it to stop us
    stop.set()
    for t in threads:
        t.join(35)
    elapsed = time.monotonic() - started
    print(json.dumps({"seconds": elapsed, "statuses": dict(statuses)}), flush=True)


def percentile(sorted_ms: list[float], q: float) -> float:
    return sorted_ms[max(0, math.ceil(q * len(sorted_ms)) - 1)]


def worker_login(port: int) -> tuple[int, float]:
    """The worker's own login (right password, another address): status and milliseconds."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=("127.0.0.2", 0))
    body = urllib.parse.urlencode({"username": WORKER, "password": PASSWORD})
    started = time.monotonic()
    conn.request("POST", "/api/v1/auth/login", body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    response = conn.getresponse()
    response.read()
    conn.close()
    return response.status, (time.monotonic() - started) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=8, help="login-looping clients in the flood")
    ap.add_argument("--alarms", type=int, default=150, help="alarms per phase")
    ap.add_argument("--rounds", type=int, default=4, help="idle + flood phase pairs")
    ap.add_argument("--interval", type=float, default=0.1, help="seconds between alarms")
    ap.add_argument("--addresses", choices=["each", "one", "rotate"], default="each",
                    help="where the flood comes from (see above)")
    ap.add_argument("--workers", type=int, help="api.login.argon2_workers (default: its default)")
    ap.add_argument("--flood-child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.flood_child is not None:
        flood(args.flood_child, args.clients, args.addresses)
        return

    phases = ["idle", "flood"] * args.rounds
    with tempfile.TemporaryDirectory(prefix="login-flood-") as tmp:
        stack = Stack(Path(tmp), len(phases) * args.alarms, hash_password(PASSWORD))
        stack.start(api={"login": {"argon2_workers": args.workers}} if args.workers else {})
        listener = Listener(stack.mosquitto.port)
        results: dict[str, list[float]] = {"idle": [], "flood": []}
        floods: list[dict[str, object]] = []
        logins: list[tuple[int, float]] = []
        try:
            ids = [f"SD-LG-{d:06d}" for d in range(1, len(phases) * args.alarms + 1)]
            time.sleep(2)
            for n, phase in enumerate(phases):
                devices = ids[n * args.alarms : (n + 1) * args.alarms]
                if phase == "idle":
                    results["idle"] += measure(stack, listener, devices, args.interval)
                    continue
                child = subprocess.Popen(
                    [sys.executable, __file__, "--flood-child", str(stack.api_port),
                     "--clients", str(args.clients), "--addresses", args.addresses],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                )
                time.sleep(3)  # the flood reaches its steady state (budgets spent)
                cpu0, t0 = stack.cpu_seconds(), time.monotonic()
                results["flood"] += measure(stack, listener, devices, args.interval)
                t1, cpu1 = time.monotonic(), stack.cpu_seconds()
                logins.append(worker_login(stack.api_port))
                out, _ = child.communicate("", timeout=60)
                report = json.loads(out.strip().splitlines()[-1])
                report["gateway_cpu"] = (cpu1 - cpu0) / (t1 - t0)
                floods.append(report)
        finally:
            listener.stop()
            stack.stop()

    print(f"login flood bench: {args.clients} clients, addresses {args.addresses}, "
          f"argon2 workers: {args.workers or 'default'}, {os.cpu_count()} CPUs, "
          f"{args.rounds} rounds of {args.alarms} alarms per condition")
    for report in floods:
        total = sum(report["statuses"].values())  # type: ignore[union-attr]
        print(f"  flood: {total / report['seconds']:,.0f} requests/s, answers {report['statuses']}, "  # type: ignore[operator]
              f"gateway CPU {100 * report['gateway_cpu']:.0f}% of a core")  # type: ignore[operator]
    for status, ms in logins:
        print(f"  worker's own login during the flood: HTTP {status} in {ms:.0f} ms")
    idle = sorted(results["idle"])
    flooded = sorted(results["flood"])
    if not idle or not flooded:
        print("no latencies measured")
        return
    for name, values in (("idle", idle), ("flood", flooded)):
        print(f"  {name:5}: n={len(values)}  p50 {percentile(values, 0.5):.1f} ms  "
              f"p99 {percentile(values, 0.99):.1f} ms  max {values[-1]:.1f} ms")
    p50 = percentile(flooded, 0.5) / percentile(idle, 0.5)
    p99 = percentile(flooded, 0.99) / percentile(idle, 0.99)
    print(f"  flood / idle: p50 x{p50:.2f}, p99 x{p99:.2f} "
          f"({'within' if p99 <= 1.10 else 'NOT within'} 10 % of idle at p99)")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
