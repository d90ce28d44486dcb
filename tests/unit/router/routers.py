"""Settings of test routers in front of scripted model services."""

from __future__ import annotations

from typing import Any

from router_svc.config import RouterSettings

PRICES = {"small": (0.1, 0.2), "large": (1.0, 2.0)}


def router_settings(targets: dict[str, list[str]], **overrides: Any) -> RouterSettings:
    """Settings for a test router over the given endpoints (no metrics port, fast retries)."""
    tiers = [
        {
            "name": name,
            "endpoints": endpoints,
            "input_usd_per_mtok": PRICES[name][0],
            "output_usd_per_mtok": PRICES[name][1],
            "timeout_seconds": 10,
        }
        for name, endpoints in targets.items()
    ]
    values: dict[str, Any] = {
        "server": {"host": "127.0.0.1", "port": 0, "metrics_port": None, "grace_seconds": 1},
        "tiers": tiers,
        "classifier": {"enabled": False},
        "resilience": {
            "retries": 1,
            "backoff_initial_seconds": 0.01,
            "backoff_max_seconds": 0.02,
            "circuit_failure_threshold": 3,
            "circuit_reset_seconds": 30,
            "health_check_interval_seconds": 0,
        },
    }
    values.update(overrides)
    return RouterSettings.load(None, **values)
