"""The router's calls to a tier carry the shared secret file's current secret (rotation)."""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry

from router_svc.config import ResilienceSettings, TierSettings
from router_svc.metrics import RouterMetrics
from router_svc.tiers import TierClient

OLD = "old-secret-" + "x" * 32
NEW = "new-secret-" + "y" * 32


async def test_a_rotated_secret_file_is_sent_from_the_next_call(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text(OLD + "\n", encoding="utf-8")
    settings = TierSettings.model_validate(
        {
            "name": "small",
            "endpoints": ["127.0.0.1:9"],
            "input_usd_per_mtok": 0.1,
            "output_usd_per_mtok": 0.2,
            "auth": {"shared_secret_file": str(secret)},
        }
    )
    metrics = RouterMetrics(CollectorRegistry(), ["small"], ["default"])
    client = TierClient(settings, ResilienceSettings(), metrics)
    try:
        assert dict(client._metadata)["authorization"] == f"Bearer {OLD}"
        # cert-manager / kubelet replace the file in place: a new inode and mtime.
        rotated = tmp_path / "secret.new"
        rotated.write_text(NEW + "\n", encoding="utf-8")
        os.replace(rotated, secret)
        assert dict(client._metadata)["authorization"] == f"Bearer {NEW}"
    finally:
        await client.close()
