"""Write the Grafana dashboards as JSON into the Helm chart, or check that they are up to date.

Usage, from the repository root::

    python -m observability.generate            # (re)write helm/tierroute/files/dashboards/*.json
    python -m observability.generate --check    # exit 1 if a file differs from the code

The JSON is deterministic (sorted keys, fixed ids), so a diff shows exactly what changed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard

from observability import dashboard_cost, dashboard_quality, dashboard_routing, dashboard_tiers

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "helm" / "tierroute" / "files" / "dashboards"

# File name (the dashboard uid) -> builder, one per dashboard.
DASHBOARDS: dict[str, Callable[[], dashboard.Dashboard]] = {
    f"{dashboard_cost.UID}.json": dashboard_cost.build,
    f"{dashboard_quality.UID}.json": dashboard_quality.build,
    f"{dashboard_routing.UID}.json": dashboard_routing.build,
    f"{dashboard_tiers.UID}.json": dashboard_tiers.build,
}


def render(build: Callable[[], dashboard.Dashboard]) -> str:
    """One dashboard as stable, pretty-printed JSON text."""
    return json.dumps(build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Write (or with ``--check`` compare) every dashboard; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m observability.generate", description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    parser.add_argument("--output-dir", type=Path, default=OUTPUT_DIR)
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        path = args.output_dir / name
        text = render(build)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}")
    if stale:
        print(
            "dashboards out of date (run: python -m observability.generate): " + ", ".join(stale),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
