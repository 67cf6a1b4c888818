"""`safety-sim`: run a device fleet or a named scenario against an MQTT broker."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import sys
from pathlib import Path

from simulators.clock import iso_local
from simulators.codecs import FORMATS
from simulators.fleet import Fleet
from simulators.inventory import DeviceSpec, default_devices, fleet_devices, load_devices
from simulators.mqtt import DEFAULT_BROKER
from simulators.scenario import load_scenario, run_scenario, scenario_names


def _rate(text: str) -> float:
    return math.inf if text in ("max", "inf") else float(text)


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

    scen = sub.add_parser("scenario", help="play a named scenario")
    common(scen)
    scen.add_argument("name", help="scenario name (see `safety-sim list`) or a YAML path")
    scen.add_argument("--speed", type=float, default=None,
                      help="clock compression (60 = 60x; default: the scenario's suggested speed)")
    scen.add_argument("--connections", choices=("device", "shared"), default="device")
    scen.add_argument("--json", action="store_true", help="print the run as JSON")

    sub.add_parser("list", help="scenarios with their expected incidents")
    return p


def _devices(args: argparse.Namespace, count: int | None = None) -> list[DeviceSpec]:
    if args.from_file is not None:
        return load_devices(args.from_file, args.site)
    return fleet_devices(args.site, count) if count is not None else default_devices(args.site)


def _list() -> int:
    for name in scenario_names():
        sc = load_scenario(name)
        print(f"{name:26} {sc.title}  (~{sc.duration_s:g} s simulated, "
              f"suggested --speed {sc.suggested_speed:g})")
        for exp in sc.expect:
            verdict = "opens" if exp.incident else "does NOT open"
            sev = f" [{exp.severity}]" if exp.severity else ""
            where = f" on {exp.role}" if exp.role else (
                f" in building {exp.building}" if exp.building else "")
            print(f"{'':28}{verdict} {exp.rule}{sev}{where}")
    return 0


def _fleet(args: argparse.Namespace) -> int:
    devices = _devices(args, args.devices)
    fleet = Fleet(devices, args.broker, rate=args.rate, fmt=args.format, qos=args.qos,
                  connections=args.connections)
    print(f"fleet: {len(devices)} devices -> {args.broker} for {args.duration:g} s", flush=True)
    if fleet.native_types:
        print(f"fleet: no {args.format} profile for {', '.join(fleet.native_types)}; "
              "those devices speak native", flush=True)
    report = fleet.run(args.duration, args.report_every, lambda line: print(line, flush=True))
    print(report.summary())
    print(f"achieved {report.rate:,.0f} msg/s")
    return 0


def _scenario(args: argparse.Namespace) -> int:
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
    return 0


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
