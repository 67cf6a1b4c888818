"""`safety-sim`: run a device fleet or a named scenario against an MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
from pathlib import Path

from core.clock import AnchoredClock
from simulators.check import ApiError, GatewayApi, check_run, offline_probe, offline_verdicts
from simulators.clock import anchored_start_ms, iso_local
from simulators.codecs import FORMATS
from simulators.fleet import Fleet
from simulators.inventory import DeviceSpec, default_devices, fleet_devices, load_devices
from simulators.mqtt import DEFAULT_BROKER
from simulators.scenario import (
    bind_roles,
    load_scenario,
    release_claim,
    run_scenario,
    scenario_names,
)


def _rate(text: str) -> float:
    return math.inf if text in ("max", "inf") else float(text)


def _anchor(text: str) -> tuple[int, int]:
    wall, _, sim = text.partition(":")
    return int(wall), int(sim)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="safety-sim", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--broker", default=DEFAULT_BROKER, help="mqtt://HOST:PORT")
        sp.add_argument("--site", default="demo", help="community code")
        sp.add_argument("--from", dest="from_file", type=Path,
                        help="device list (YAML/JSON) or a community file; default for "
                             "site demo: the sample community gateway/sample/demo-community.yaml")

    fleet = sub.add_parser("fleet", help="devices of every type behaving like the real ones")
    common(fleet)
    fleet.add_argument("--devices", type=int, default=200, help="generated devices")
    fleet.add_argument("--rate", type=_rate, default=1.0,
                       help="time multiplier: 1 = real life, 3600 = an hour a second, max")
    fleet.add_argument("--duration", type=float, default=30.0, help="real seconds")
    fleet.add_argument("--format", choices=FORMATS, default="native")
    fleet.add_argument("--qos", type=int, choices=(0, 1), default=0)
    fleet.add_argument("--connections", choices=("shared", "device"), default="shared",
                       help="one shared connection (load) or one per device with Last Will")
    fleet.add_argument("--report-every", type=float, default=5.0)
    fleet.add_argument("--anchor", type=_anchor, default=None, metavar="WALL_MS:SIM_MS",
                       help="follow a gateway's compressed clock (`safety-gateway demo` passes "
                            "it): simulated now = SIM_MS + (wall now - WALL_MS) x rate")

    scen = sub.add_parser("scenario", help="play a named scenario")
    common(scen)
    scen.add_argument("name", help="scenario name (see `safety-sim list`) or a YAML path")
    scen.add_argument("--speed", type=float, default=None,
                      help="clock compression (60 = 60x; default: the scenario's suggested speed)")
    scen.add_argument("--connections", choices=("device", "shared"), default="device")
    scen.add_argument("--json", action="store_true", help="print the run as JSON")
    scen.add_argument("--api", metavar="URL",
                      help="check the expectations against this gateway (http://HOST:PORT): "
                           "PASS/FAIL each, exit status 1 on a miss")
    scen.add_argument("--token", help="a service token for --api")
    scen.add_argument("--user", help="a login for --api (e.g. duty-sun)")
    scen.add_argument("--password", help="its password")
    scen.add_argument("--wait", type=float, default=None, metavar="S",
                      help="real seconds to wait for the expected incidents (default: 10 + "
                           "what the scenario's timers need at the gateway's speed)")

    sub.add_parser("list", help="scenarios with their expected incidents")
    return p


def _devices(args: argparse.Namespace, count: int | None = None) -> list[DeviceSpec]:
    if args.from_file is not None:
        return load_devices(args.from_file, args.site)
    return fleet_devices(args.site, count) if count is not None else default_devices(args.site)


def _list() -> int:
    for name in scenario_names():
        sc = load_scenario(name)
        pace = (f"against `safety-gateway demo --rate {sc.suggested_speed:g} --no-fleet`"
                if sc.needs_gateway_time else f"suggested --speed {sc.suggested_speed:g}")
        print(f"{name:26} {sc.title}  (~{sc.duration_s:g} s simulated, {pace})")
        for exp in sc.expect:
            verdict = "opens" if exp.incident else "does NOT open"
            sev = f" [{exp.severity}]" if exp.severity else ""
            where = f" on {exp.role}" if exp.role else (
                f" in building {exp.building}" if exp.building else "")
            when = f" (between {exp.when} gateway time)" if exp.when else ""
            print(f"{'':28}{verdict} {exp.rule}{sev}{where}{when}")
        for check in sc.expect_offline:
            print(f"{'':28}shows every device of building {check.building} offline at "
                  f"+{check.at / 60:g} min")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    devices = _devices(args, args.devices)
    fleet = Fleet(devices, args.broker, rate=args.rate, fmt=args.format, qos=args.qos,
                  connections=args.connections, anchor=args.anchor, site=args.site)
    print(f"fleet: {len(devices)} devices -> {args.broker} for {args.duration:g} s", flush=True)
    if fleet.native_types:
        print(f"fleet: no {args.format} profile for {', '.join(fleet.native_types)}; "
              "those devices speak native", flush=True)
    report = fleet.run(args.duration, args.report_every, lambda line: print(line, flush=True))
    print(report.summary())
    print(f"achieved {report.rate:,.0f} msg/s")
    return 0


def _scenario(args: argparse.Namespace) -> int:
    if args.api is not None:
        return _checked_scenario(args)
    devices = _devices(args)
    speed = args.speed if args.speed is not None else load_scenario(args.name).suggested_speed
    run = asyncio.run(run_scenario(args.name, args.broker, args.site, devices, speed,
                                   connections=args.connections))
    if args.json:
        print(json.dumps({
            "scenario": run.scenario.name, "site": run.site,
            "roles": {r: d.device_id for r, d in run.roles.items()},
            "published": len(run.published), "sim_start_ms": run.sim_start_ms,
            "sim_end_ms": run.sim_end_ms, "real_seconds": round(run.real_seconds, 3),
            "expected": [dataclasses.asdict(e) for e in run.expected],
        }, ensure_ascii=False, indent=2))
        return 0
    print(f"{run.scenario.name}: {len(run.published)} messages in {run.real_seconds:.1f} s "
          f"(speed x{run.speed:g}); simulated {iso_local(run.sim_start_ms)} -> "
          f"{iso_local(run.sim_end_ms)}")
    print("roles: " + ", ".join(f"{r}={d.device_id}" for r, d in run.roles.items()))
    for exp in run.expected:
        verdict = "expect incident" if exp.incident else "expect NO incident"
        print(f"  {verdict}: {exp.rule}" + (f" [{exp.severity}]" if exp.severity else "")
              + (f" on {exp.device_id}" if exp.device_id else
                 f" in building {exp.building}" if exp.building else ""))
    print("not checked: add --api http://HOST:PORT and --user/--password (or --token) to "
          "check these against the gateway")
    return 0


def _checked_scenario(args: argparse.Namespace) -> int:
    """Play against a gateway on its clock, then check every expectation through its API."""
    scenario = load_scenario(args.name)
    try:
        api = GatewayApi.connect(args.api, args.token, args.user, args.password)
        clock = api.clock()
    except ApiError as err:
        print(f"safety-sim: {err}", file=sys.stderr)
        return 2
    gateway_speed = float(clock["speed"])
    follow: AnchoredClock | None = None
    start_ms: int | None = None
    if gateway_speed != 1:
        # a compressed gateway: the devices' time is its time, at its pace
        if args.speed is not None and args.speed != gateway_speed:
            print(f"note: the gateway's clock runs x{gateway_speed:g}; playing at that speed, "
                  f"not x{args.speed:g}")
        speed = gateway_speed
        follow = AnchoredClock(gateway_speed, int(clock["wall_ms"]), int(clock["sim_ms"]))
    else:
        speed = args.speed if args.speed is not None else scenario.suggested_speed
        if scenario.needs_gateway_time and speed != 1:
            hours = scenario.duration_s / 3600
            print(f"FAIL  {scenario.name} needs {hours:g} h of the gateway's time (its timers "
                  f"run on the gateway's clock, which runs in real time): start the demo with "
                  f"`safety-gateway demo --rate {scenario.suggested_speed:g} --no-fleet`, or "
                  f"play it with "
                  f"--speed 1 and wait {hours:g} h")
            return 1
        start_ms = anchored_start_ms(scenario.duration_s, speed, now_ms=int(clock["now_ms"]),
                                     time_of_day=scenario.start_at)
    devices = _devices(args)
    try:
        busy_devices, busy_buildings = api.busy(args.site)
    except ApiError as err:
        print(f"safety-sim: {err}", file=sys.stderr)
        return 2
    pools = [[d for d in devices if d.building not in busy_buildings],
             [d for d in devices if d.device_id not in busy_devices], devices]
    for pool in pools:  # quiet buildings first, then quiet devices, then anything
        try:
            bind_roles(scenario, [d for d in pool if d.site == args.site])
        except LookupError:
            continue
        devices = pool
        break
    if busy_buildings:
        print(f"note: open incidents in building(s) {', '.join(sorted(busy_buildings))}; "
              "the scenario plays elsewhere where it can", flush=True)
    gw_start = int(api.clock()["now_ms"])
    seen: dict[int, set[str]] = {}
    probes = [(c.at, offline_probe(api, seen, i)) for i, c in enumerate(scenario.expect_offline)]
    run = asyncio.run(run_scenario(scenario, args.broker, args.site, devices, speed,
                                   connections=args.connections, start_ms=start_ms,
                                   clock=follow, claim=True, probes=probes))
    try:
        gw_start = run.sim_start_ms if follow is not None else gw_start
        gw_end = int(api.clock()["now_ms"])
        print(f"{run.scenario.name}: {len(run.published)} messages in {run.real_seconds:.1f} s "
              f"(speed x{run.speed:g}); roles: "
              + ", ".join(f"{r}={d.device_id}" for r, d in run.roles.items()), flush=True)
        wait = args.wait if args.wait is not None else 10 + scenario.settle_s / gateway_speed
        # On the gateway's clock the run knows when it ended; on its own clock, the gateway's
        # "now" just after is the nearest.
        played_until = run.sim_end_ms if follow is not None else gw_end
        ok = check_run(api, run, gw_start, gw_end, gateway_speed, wait,
                       lambda line: print(line, flush=True),
                       offline_verdicts(run, [d for d in devices if d.site == args.site], seen),
                       played_until_ms=played_until)
    except ApiError as err:
        print(f"FAIL  cannot check: {err}", flush=True)
        ok = False
    finally:
        if run.claim is not None:
            asyncio.run(release_claim(args.broker, args.site, run.claim))
        api.close()
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``safety-sim`` console script."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "list":
            return _list()
        if args.command == "fleet":
            return _fleet(args)
        return _scenario(args)
    except (OSError, ValueError, LookupError) as err:
        print(f"safety-sim: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
