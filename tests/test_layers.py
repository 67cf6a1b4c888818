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
    assert "gateway -> api" in done.stdout  # the wiring's one upward arrow is still seen


def test_core_imports_nothing_of_ours() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import_layers.py")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert not [line for line in done.stdout.splitlines() if line.strip().startswith("core ->")]
