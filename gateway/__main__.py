"""`safety-gateway`: run the gateway (`run --config FILE`), the one-command demo (`demo`), and tools."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from gateway.settings import Settings, load_settings

log = logging.getLogger("gateway")

DATA_DIR_HELP = (
    "a demo's data directory (default: var/demo when it holds a database, as "
    "`safety-gateway demo` makes it; else the settings' database)"
)


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _serve(main: Coroutine[Any, Any, None]) -> None:
    """Run a long-lived service on uvloop where it is installed: its event loop costs less per
    turn, measured ~6% of the gateway's CPU per message (benchmarks/ingest_bench.py)."""
    try:
        import uvloop
    except ImportError:  # not on this platform: the standard loop does the same job
        asyncio.run(main)
        return
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main)


async def _run_until_signalled(coro_factory: object, announce: str | None = None) -> None:
    """Run the gateway; SIGINT/SIGTERM cancel it, which flushes and shuts down cleanly.
    ``announce`` is printed when the first signal arrives."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None

    def stop() -> None:
        if announce is not None and not task.cancelling():
            print(announce, flush=True)
        task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop)
    with contextlib.suppress(asyncio.CancelledError):
        await coro_factory()  # type: ignore[operator]


def cmd_run(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ValueError as exc:
        print(f"safety-gateway: configuration error:\n{exc}", file=sys.stderr)
        return 2
    _setup_logging(settings.log_level)
    from gateway.app import Gateway

    gateway = Gateway(settings)
    _serve(_run_until_signalled(gateway.run))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    _setup_logging("WARNING" if not args.verbose else "INFO")
    # As the demo stops: one plain line per component.
    stopped = logging.getLogger("gateway.stopped")
    stopped.setLevel(logging.INFO)
    stopped.propagate = False
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("  %(message)s"))
    stopped.addHandler(handler)
    _serve(
        _run_until_signalled(
            lambda: run_demo(
                data_dir=args.data_dir,
                api_port=args.port,
                broker_port=args.broker_port,
                rate=args.rate,
                fleet=not args.no_fleet,
                embedded_broker=args.embedded_broker,
            ),
            announce="stopping the demo …",
        )
    )
    return 0


def _tool(args: argparse.Namespace, run: Any) -> int:
    """Run an operator tool on the configuration it finds (gateway.cli_config)."""
    from gateway.cli_config import NoDatabase, tool_settings

    try:
        settings = tool_settings(args.config, args.data_dir)
        return int(asyncio.run(run(settings)))
    except (ValueError, NoDatabase) as exc:
        print(f"safety-gateway {args.command}: {exc}", file=sys.stderr)
        return 2


def cmd_route_test(args: argparse.Namespace) -> int:
    from gateway.tools import route_test

    return _tool(args, lambda s: route_test(s, args.site, args.device, args.rule))


def cmd_acl(args: argparse.Namespace) -> int:
    from gateway.tools import write_acl

    if args.community is not None:  # the file alone: no database involved
        settings = load_settings(args.config) if args.config else Settings(mode="development")
        return asyncio.run(write_acl(settings, args.community, args.out))
    return _tool(args, lambda s: write_acl(s, args.community, args.out))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="safety-gateway", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gateway (production: external broker and stores)")
    run.add_argument("--config", type=Path, help="YAML configuration file")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser(
        "demo", help="everything in one command: broker, stores, sample community, fleet"
    )
    demo.add_argument("--data-dir", type=Path, default=Path("var/demo"))
    demo.add_argument(
        "--port", type=int, default=8080, help="board and API port (next free if taken)"
    )
    demo.add_argument(
        "--broker-port", type=int, default=1884, help="embedded broker port (next free if taken)"
    )
    demo.add_argument(
        "--rate", type=float, default=1.0, help="time multiplier of the whole demo (gateway clock, fleet and scenarios played "
        "against it): 1 = real life, 60 = an hour a minute, 3600 = an hour a second",
    )
    demo.add_argument("--no-fleet", action="store_true", help="do not start the simulated fleet")
    demo.add_argument(
        "--embedded-broker",
        choices=("auto", "mosquitto", "amqtt"),
        default="auto",
        help="auto: Mosquitto when installed, else amqtt (pure Python, MQTT 3.1.1)",
    )
    demo.add_argument("-v", "--verbose", action="store_true")
    demo.set_defaults(func=cmd_demo)

    rt = sub.add_parser("route-test", help="who is notified when, for a device and a rule")
    rt.add_argument("--config", type=Path, help="the gateway's configuration file")
    rt.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    rt.add_argument("--site", default="demo")
    rt.add_argument("device")
    rt.add_argument("rule")
    rt.set_defaults(func=cmd_route_test)

    acl = sub.add_parser(
        "acl", help="write the Mosquitto ACL for every registered device and worker app"
    )
    acl.add_argument("--config", type=Path, help="the gateway's configuration file")
    acl.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    acl.add_argument("--community", type=Path, help="community YAML (default: the registry)")
    acl.add_argument("--out", type=Path, default=Path("-"))
    acl.set_defaults(func=cmd_acl)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
