"""Sustained ingest: messages/s from the broker into InfluxDB at QoS 1 with no loss, CPU per
message, peak RSS under backlog, and (with --profile) where the gateway's time goes.

    .venv/bin/python benchmarks/ingest_bench.py --messages 600000 --devices 1000 --profile
    .venv/bin/python benchmarks/ingest_bench.py --messages 1000000 --backlog
    .venv/bin/python benchmarks/ingest_bench.py --messages 1000000 --outage 20

With ``--backlog`` the gateway is stopped first and every message waits in its persistent
session at the broker; the gateway then starts into that backlog (a site coming back after an
outage or an upgrade), and the figures are for draining it. With ``--outage S`` influxd is
stopped for S seconds once 30% of the messages are in: the gateway spools to disk, then
replays; the run ends when the spool is empty and every point is in InfluxDB.

Mosquitto, influxd, the gateway (a separate process) and the C load generator share the
machine, as they would on a small site's box.
"""

from __future__ import annotations

import argparse
import collections
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _stack import Stack, build_loadgen, have_py_spy


def summarise_profile(raw: Path, top: int = 20) -> tuple[list[tuple[float, str]], list[tuple[float, str]]]:
    """Self and inclusive time per function (file:function, lines merged) from py-spy's stacks."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [f.rsplit(":", 1)[0] + ")" if ":" in f else f for f in stack.split(";")]
        own[frames[-1]] += n
        for f in set(frames):
            incl[f] += n
    pct = lambda c: [(100.0 * v / total, k) for k, v in c.most_common(top)]  # noqa: E731
    return pct(own), pct(incl)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--messages", type=int, default=600_000)
    ap.add_argument("--devices", type=int, default=1000)
    ap.add_argument("--profile", action="store_true", help="sample the gateway with py-spy")
    ap.add_argument("--backlog", action="store_true",
                    help="publish everything while the gateway is down, then start it")
    ap.add_argument("--outage", type=float, default=0.0, metavar="S",
                    help="stop influxd for S seconds once 30%% of the messages are in")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="ingest-bench-") as tmp:
        work = Path(tmp)
        loadgen = build_loadgen(work)
        stack = Stack(work, args.devices)
        stack.start()
        try:
            run(stack, loadgen, args, work)
        finally:
            stack.stop()


def run(stack: Stack, loadgen: Path, args: argparse.Namespace, work: Path) -> None:
    n = args.messages
    command = [str(loadgen), "-p", str(stack.mosquitto.port), "-n", str(n), "-m",
               str(args.devices), "-q", "1", "-s", "demo"]
    backlog_at_start = 0
    gen: subprocess.Popen[str] | None = None
    if args.backlog:
        stack.stop_gateway()
        queued = subprocess.run(command, capture_output=True, text=True, check=True)
        print(f"backlog:            {queued.stdout.strip().splitlines()[-1]} (gateway down)")
        t0 = time.monotonic()
        stack.start_gateway()
        ingest = stack.health()["components"]["ingest"]
        backlog_at_start = ingest["stored"] + ingest["duplicates"]
        cpu0 = stack.cpu_split()
    else:
        cpu0, t0 = stack.cpu_split(), time.monotonic()
        gen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    profile_raw = work / "profile.txt"
    spy: threading.Thread | None = None
    if args.profile and (py_spy := have_py_spy()):
        def record() -> None:
            time.sleep(3)
            subprocess.run([py_spy, "record", "--pid", str(stack.gateway.pid), "--duration", "10",  # type: ignore[union-attr]
                            "--format", "raw", "--output", str(profile_raw), "--nonblocking"],
                           capture_output=True, check=False)
        spy = threading.Thread(target=record)
        spy.start()

    marks: dict[str, tuple[float, int]] = {}
    rss_samples: list[int] = []
    stored = 0
    outage: list[float] = []  # when influxd was stopped, when it came back
    spool_peak = 0

    def outage_step(now: float) -> None:
        if not args.outage:
            return
        if not outage and stored >= 0.3 * n:
            stack.influxd.stop()
            outage.append(now)
        elif len(outage) == 1 and now - outage[0] >= args.outage:
            stack.influxd.start()
            outage.append(now)

    deadline = time.monotonic() + max(120, n / 2000)
    while time.monotonic() < deadline:
        try:
            components = stack.health()["components"]
        except OSError:
            print("  (health did not answer in 5 s: the gateway's loop is saturated)")
            continue
        ingest = components["ingest"]
        spool_peak = max(spool_peak, (components["timeseries"].get("spool") or {}).get("readings", 0))
        stored = ingest["stored"] + ingest["duplicates"]
        now = time.monotonic()
        outage_step(now)
        for frac in (0.2, 0.8):
            key = f"{frac}"
            if key not in marks and stored >= frac * n:
                marks[key] = (now, stored)
        rss_samples.append(stack.rss_kib()[0])
        if stored >= n:
            break
        time.sleep(0.25)
    t1, cpu1 = time.monotonic(), stack.cpu_split()
    gen_out = gen.communicate(timeout=60)[0].strip() if gen is not None else ""
    if spy:
        spy.join()

    # What the gateway stored may still sit in its disk spool: wait for it to drain.
    drain_deadline = time.monotonic() + 60 + 2 * args.outage + (n / 5000 if args.outage else 0)
    while time.monotonic() < drain_deadline:
        outage_step(time.monotonic())
        ts = stack.health()["components"]["timeseries"]
        readings = (ts.get("spool") or {}).get("readings", 0)
        spool_peak = max(spool_peak, readings)
        rss_samples.append(stack.rss_kib()[0])
        if readings == 0 and len(outage) != 1:
            break
        time.sleep(0.5)
    t_drained, cpu_drained = time.monotonic(), stack.cpu_split()
    count = stack.influxd.query('SELECT count("seq") FROM "smoke"', "bench")
    series = count["results"][0].get("series")
    in_influx = int(series[0]["values"][0][1]) if series else 0
    _rss, peak = stack.rss_kib()
    (ta, sa), (tb, sb) = marks.get("0.2", (t0, 0)), marks.get("0.8", (t1, stored))
    sustained = (sb - sa) / (tb - ta) if tb > ta else float("nan")
    if gen is not None:
        print(f"load generator:     {gen_out.splitlines()[-1] if gen_out else '(no output)'}")
    print(f"messages:           {n} published at QoS 1, {stored} accounted by the gateway, "
          f"{in_influx} points in InfluxDB ({'no loss' if in_influx == n else f'{n - in_influx} MISSING'})")
    if outage:
        back = f"back after {outage[1] - outage[0]:.0f} s" if len(outage) == 2 else "NOT restarted"
        print(f"InfluxDB outage:    stopped at {outage[0] - t0:.1f} s, {back}; the disk spool "
              f"peaked at {spool_peak:,} readings and was empty {t_drained - t0:.1f} s after the start")
        replay = sum(cpu_drained) - sum(cpu1)
        print(f"                    replaying after the last message came in: {replay:.1f} s CPU "
              f"({replay / max(spool_peak, 1) * 1e6:.1f} µs per spooled reading, at most)")
    into = "InfluxDB or its disk spool" if outage else "InfluxDB"
    print(f"end to end:         {n / (t1 - t0):,.0f} msg/s over {t1 - t0:.1f} s (broker → {into}"
          f"{', from starting the gateway' if args.backlog else ''})")
    print(f"sustained (20–80%): {sustained:,.0f} msg/s")
    # In backlog mode the messages handled while the gateway was starting are left out.
    handled = n - backlog_at_start
    user, system = cpu1[0] - cpu0[0], cpu1[1] - cpu0[1]
    print(f"gateway CPU:        {(user + system) / handled * 1e6:.1f} µs per message "
          f"(user {user / handled * 1e6:.1f} + system {system / handled * 1e6:.1f}; "
          f"{user + system:.1f} s CPU for {handled} messages)")
    tenth = max(1, len(rss_samples) // 10)
    deciles = [max(rss_samples[i * tenth:(i + 1) * tenth] or [0]) // 1024 for i in range(10)]
    print(f"gateway RSS:        peak {peak / 1024:.0f} MiB; during the run min "
          f"{min(rss_samples) / 1024:.0f} / max {max(rss_samples) / 1024:.0f} MiB; "
          f"max per tenth of the run (MiB): {' '.join(str(d) for d in deciles)}")
    if profile_raw.exists():
        own, incl = summarise_profile(profile_raw)
        print("where the gateway's time goes (py-spy samples; self time):")
        for pct, fn in own:
            print(f"  {pct:5.1f}%  {fn}")
        print("inclusive time (function and what it calls):")
        for pct, fn in incl:
            print(f"  {pct:5.1f}%  {fn}")


if __name__ == "__main__":
    main()
