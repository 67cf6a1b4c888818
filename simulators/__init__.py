"""Device simulators: a realistic fleet and named scenarios published over real MQTT.

Public API::

    from simulators import run_scenario, load_scenario, scenario_names, demo_devices
    run = await run_scenario("kitchen-fire", "mqtt://127.0.0.1:1883", "demo", devices, speed=60)
    run.published   # every message sent, in order
    run.expected    # the incidents the gateway is expected to open (or not)
"""

from simulators.clock import SimClock
from simulators.inventory import DeviceSpec, default_devices, demo_devices, load_devices
from simulators.scenario import (
    Expectation,
    PublishedMessage,
    Scenario,
    ScenarioRun,
    load_scenario,
    run_scenario,
    scenario_names,
)

__all__ = [
    "DeviceSpec",
    "Expectation",
    "PublishedMessage",
    "Scenario",
    "ScenarioRun",
    "SimClock",
    "default_devices",
    "demo_devices",
    "load_devices",
    "load_scenario",
    "run_scenario",
    "scenario_names",
]
