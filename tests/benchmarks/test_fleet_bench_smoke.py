"""benchmarks/fleet_bench.py --smoke: the benchmark still runs end to end (no figures checked:
timing on a shared machine is no test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_fleet_bench_smoke_mode_runs_baseline_gateway_and_storm() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "fleet_bench.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr[-3000:]
    for expected in (
        "  baseline ",
        "  gateway ",
        "gateway start-up with",
        "storm (",
        "pages per person for the storm",
        "gateway / baseline capacity",
    ):
        assert expected in out, f"{expected!r} missing from:\n{out}"
