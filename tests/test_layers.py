"""The structure holds: no package imports one above it (the wiring excepted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_no_package_imports_one_above_it() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_layers.py")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    table = [line.split() for line in done.stdout.splitlines()]
    assert ["gateway", "->", "api"] in [row[:3] for row in table]  # the wiring's arrow is seen
    assert not [row for row in table if row[0] == "core"], "core imports nothing of ours"
