"""Shared set-up for the benchmarks: broker, influxd, a community of load-test devices, the gateway
as a separate process (so its CPU time and memory are its own), and the C load generator."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.services import Influxd, Mosquitto, free_port  # noqa: E402

# /health shows its component figures to the metrics token only (and to staff).
MONITOR_TOKEN = "bench-metrics-token-0123456789abcdef0123"


def build_loadgen(workdir: Path) -> Path:
    """Compile benchmarks/loadgen.c (Debian: libmosquitto-dev) once per run."""
    out = workdir / "loadgen"
    subprocess.run(
        ["gcc", "-O2", "-o", str(out), str(ROOT / "benchmarks" / "loadgen.c"), "-lmosquitto"],
        check=True,
    )
    return out


def bench_community(path: Path, devices: int, password_hash: str | None = None) -> None:
    """``devices`` smoke detectors SD-LG-000001… (the load generator's ids) in 4 grids; people
    can log in with the password of ``password_hash`` when it is given."""
    grids = [{"code": f"g{i}", "name": f"网格{i}"} for i in range(1, 5)]
    buildings = [{"code": f"b{i:02d}", "name": f"{i}号楼", "grid": f"g{i % 4 + 1}"} for i in range(1, 21)]
    spec = {
        "site": {"code": "demo", "name": "压测社区", "timezone": "Asia/Shanghai"},
        "grids": grids,
        "buildings": buildings,
        "devices": [
            {"id": f"SD-LG-{d:06d}", "type": "smoke", "building": f"b{d % 20 + 1:02d}",
             "location": f"{d % 20 + 1}号楼"}
            for d in range(1, devices + 1)
        ],
        "people": [
            {"id": f"worker-{i}", "name": f"网格员{i}", "role": "grid_worker",
             "channels": {"mqtt": True}, "grids": [f"g{i}"]}
            for i in range(1, 5)
        ] + [{"id": "duty-1", "name": "值班员", "role": "duty_staff", "channels": {"mqtt": True}}],
        "roster": {"weekly": [{"person": "duty-1", "days": "daily", "start": "00:00", "end": "00:00"}]},
    }
    if password_hash is not None:
        for person in spec["people"]:  # type: ignore[attr-defined]
            person["password_hash"] = password_hash
    path.write_text(yaml.safe_dump(spec, allow_unicode=True), encoding="utf-8")


class Stack:
    def __init__(self, workdir: Path, devices: int, password_hash: str | None = None) -> None:
        self.workdir = workdir
        self.password_hash = password_hash
        self.mosquitto = Mosquitto(workdir / "mosquitto")
        self.influxd = Influxd(workdir / "influxd")
        self.api_port = free_port()
        self.devices = devices
        self.gateway: subprocess.Popen[bytes] | None = None
        self.config = workdir / "gateway.yaml"

    def start(self, **gateway_overrides: object) -> None:
        self.mosquitto.start()
        self.influxd.start()
        self.influxd.create_database("bench")
        community = self.workdir / "community.yaml"
        bench_community(community, self.devices, self.password_hash)
        config: dict[str, object] = {
            "mode": "development",
            "data_dir": str(self.workdir / "gateway"),
            "community_file": str(community),
            "mqtt": {"url": self.mosquitto.url, "client_id": "gateway-bench"},
            "database": {"url": f"sqlite+aiosqlite:///{self.workdir / 'gateway.db'}"},
            "timeseries": {"backend": "influxdb1", "url": self.influxd.url, "database": "bench"},
            "api": {"port": self.api_port, "metrics_token": MONITOR_TOKEN},
            "log_level": "WARNING",
        }
        api = {**config["api"], **gateway_overrides.pop("api", {})}  # type: ignore[dict-item]
        config.update(gateway_overrides, api=api)
        self.config = self.workdir / "gateway.yaml"
        self.config.write_text(yaml.safe_dump(config), encoding="utf-8")
        self.start_gateway()

    def start_gateway(self) -> None:
        """Start the gateway and wait until its MQTT session is up (it may be busy at once)."""
        log = (self.workdir / "gateway.log").open("ab")
        self.gateway = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if self.health()["components"]["mqtt"]["status"] == "ok":
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError("the gateway did not start; see gateway.log")

    def stop_gateway(self) -> None:
        """Ctrl-C the gateway; its persistent session stays with the broker."""
        if self.gateway is not None and self.gateway.poll() is None:
            self.gateway.terminate()
            try:
                self.gateway.wait(30)
            except subprocess.TimeoutExpired:
                self.gateway.kill()

    def health(self) -> dict:  # type: ignore[type-arg]
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.api_port}/health",
            headers={"Authorization": f"Bearer {MONITOR_TOKEN}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as r:
                return json.loads(r.read())  # type: ignore[no-any-return]
        except urllib.error.HTTPError as exc:  # 503 still carries the body
            return json.loads(exc.read())  # type: ignore[no-any-return]

    def cpu_seconds(self) -> float:
        """User + system CPU of the gateway process (all its threads), in seconds."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds of the gateway process."""
        assert self.gateway is not None
        fields = Path(f"/proc/{self.gateway.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def rss_kib(self) -> tuple[int, int]:
        """(current RSS, peak RSS) of the gateway process in KiB."""
        assert self.gateway is not None
        status = Path(f"/proc/{self.gateway.pid}/status").read_text()
        values = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        return int(values["VmRSS"].split()[0]), int(values["VmHWM"].split()[0])

    def stop(self) -> None:
        self.stop_gateway()
        self.influxd.stop()
        self.mosquitto.stop()


def have_py_spy() -> str | None:
    return shutil.which("py-spy") or (str(Path(sys.executable).parent / "py-spy")
                                      if (Path(sys.executable).parent / "py-spy").exists() else None)
