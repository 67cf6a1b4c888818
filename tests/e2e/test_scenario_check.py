"""`safety-sim scenario NAME --api …` checks its own expectations against the demo (issue 11,
item 2): every scenario of `safety-sim list` prints PASS against `safety-gateway demo`, and a
missing expectation prints FAIL and fails the command.

Two demos, as a user would start them: the default one (real time, with its fleet running the
rest of the community) plays every scenario whose outcome comes from the devices, each at a
speed that plays it in a second or two (the gateway's rules see the same messages; none of
these depends on the gateway's own timers); `--rate 3600 --no-fleet` plays those whose
outcome comes from the gateway's timers (hours of absence, a 2-minute duration) on its
compressed clock.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from simulators import load_scenario, scenario_names
from simulators.scenario import SCENARIO_DIR
from tests.services import free_port

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
LOGIN = ["--user", "duty-sun", "--password", "yangguang-demo"]
ON_GATEWAY_TIME = ["building-power-loss", "charger-thermal-runaway", "elderly-silent-day"]


class Demo:
    def __init__(self, tmp: Path, *args: str) -> None:
        self.api_port, self.broker_port = free_port(), free_port()
        self.out = tmp / "demo.out"
        self.proc = subprocess.Popen(
            [str(BIN / "safety-gateway"), "demo", "--data-dir", str(tmp / "demo"),
             "--port", str(self.api_port), "--broker-port", str(self.broker_port), *args],
            stdout=self.out.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while "Ctrl-C" not in self.out.read_text(errors="replace"):
            assert self.proc.poll() is None, self.out.read_text(errors="replace")
            assert time.monotonic() < deadline, "the demo did not start"
            time.sleep(0.2)

    def sim(self, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(BIN / "safety-sim"), "scenario", *args, "--site", "demo",
             "--broker", f"mqtt://127.0.0.1:{self.broker_port}",
             "--api", f"http://127.0.0.1:{self.api_port}", *LOGIN],
            capture_output=True, text=True, timeout=timeout)

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGINT)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    running = Demo(tmp_path_factory.mktemp("demo"))
    yield running
    running.stop()


def passed(name: str, done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    assert f"{name}: PASS" in text and "FAIL" not in text, text
    checks = re.findall(r"^  PASS  ", text, re.MULTILINE)
    assert len(checks) >= len(load_scenario(name).expect), text


def test_every_device_driven_scenario_passes_against_the_demo(demo: Demo) -> None:
    names = [n for n in scenario_names() if n not in ON_GATEWAY_TIME]
    assert len(names) >= 10
    for name in names:
        scenario = load_scenario(name)
        assert not scenario.needs_gateway_time and not scenario.settle_s, name
        speed = max(scenario.suggested_speed, scenario.duration_s / 2)
        passed(name, demo.sim(name, "--speed", f"{speed:g}"))


def test_a_missing_expectation_fails_the_command(demo: Demo, tmp_path: Path) -> None:
    spec = yaml.safe_load((SCENARIO_DIR / "sos-button.yaml").read_text(encoding="utf-8"))
    spec["name"] = "sos-button-expects-a-fall"
    spec["expect"].append({"rule": "sos.fall", "severity": "critical", "incident": True,
                           "role": "elder"})
    path = tmp_path / "sos-button-expects-a-fall.yaml"
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")
    done = demo.sim(str(path), "--speed", "10")
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"^  FAIL  incident sos\.fall \[critical\] on sos-\S+: not opened$",
                     done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^  PASS  incident sos\.button \[critical\]", done.stdout, re.MULTILINE)
    assert "sos-button-expects-a-fall: FAIL (1 of 3 checks)" in done.stdout, done.stdout


def test_a_scenario_on_gateway_time_says_what_it_needs_on_a_real_time_gateway(
    demo: Demo,
) -> None:
    done = demo.sim("building-power-loss")
    assert done.returncode == 1, done.stdout
    assert "FAIL" in done.stdout
    assert "safety-gateway demo --rate 3600 --no-fleet" in done.stdout, done.stdout


def test_scenarios_on_gateway_time_pass_against_a_compressed_demo(tmp_path: Path) -> None:
    compressed = Demo(tmp_path, "--rate", "3600", "--no-fleet")
    try:
        for name in ON_GATEWAY_TIME:
            passed(name, compressed.sim(name))
    finally:
        compressed.stop()
