"""Which package imports which, and whether any imports one above it.

The floors, bottom up: core → device_profiles → alerting → gateway → api, with simulators
beside the top (they read profiles and community files, and nothing imports them). The wiring
(gateway/app.py) is the one place allowed to reach up: it builds every stage, the API included.

    .venv/bin/python scripts/import_layers.py      # prints the table; exit 1 on an upward import
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FLOORS = ("core", "device_profiles", "alerting", "gateway", "api", "simulators")
WIRING = {Path("gateway/app.py")}


def imports(path: Path) -> set[str]:
    """The packages of ours that a file imports (type-checking-only imports included)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        else:
            continue
        found.update(n.split(".")[0] for n in names if n.split(".")[0] in FLOORS)
    return found


def main() -> int:
    edges: dict[tuple[str, str], list[Path]] = defaultdict(list)
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT)
            for target in imports(path) - {package}:
                edges[(package, target)].append(rel)
    upward = []
    for (source, target), files in sorted(edges.items(), key=lambda e: FLOORS.index(e[0][0])):
        up = FLOORS.index(target) > FLOORS.index(source) and target != "simulators"
        offenders = [f for f in files if f not in WIRING] if up else []
        mark = "UP " if offenders else ("up (wiring)" if up else "")
        print(f"{source:>15} -> {target:<15} {len(files):3} files  {mark}")
        upward += [(f, target) for f in offenders]
        if target == "simulators":
            upward += [(f, target) for f in files]
    for path, target in upward:
        print(f"upward import: {path} imports {target}", file=sys.stderr)
    return 1 if upward else 0


if __name__ == "__main__":
    sys.exit(main())
