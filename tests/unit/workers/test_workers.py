"""Worker settings: cores given, per-worker settings, the shared-port server."""

from __future__ import annotations

from pathlib import Path

import pytest

from router_svc.config import RouterSettings
from router_svc.workers import WorkerSettings, cores_given, worker_count, worker_settings


@pytest.mark.parametrize(
    ("cpu_max", "expected_cap"), [("max 100000", None), ("150000 100000", 2), ("50000 100000", 1)]
)
def test_cores_given_honours_a_cgroup_quota(
    tmp_path: Path, cpu_max: str, expected_cap: int | None
) -> None:
    limits = tmp_path / "cpu.max"
    limits.write_text(cpu_max)
    affinity = cores_given(tmp_path / "absent")
    assert affinity >= 1
    cap = affinity if expected_cap is None else min(affinity, expected_cap)
    assert cores_given(limits) == cap


def test_auto_means_the_cores_given_and_a_number_is_taken_as_is() -> None:
    assert worker_count(WorkerSettings(count="auto")) == cores_given()
    assert worker_count(WorkerSettings(count=3)) == 3
    assert worker_count(WorkerSettings()) == 1


def test_each_worker_gets_the_shared_port_and_its_own_state_file(tmp_path: Path) -> None:
    settings = RouterSettings.model_validate(
        {
            "server": {"port": 0, "metrics_port": 9100, "health_port": 9200},
            "start_tier": {"enabled": True, "state_path": str(tmp_path / "start.npz")},
            "quality": {"state_dir": str(tmp_path / "quality")},
        }
    )
    first, second = (worker_settings(settings, 50123, i) for i in (0, 1))
    assert (first.server.port, first.server.metrics_port, first.server.health_port) == (
        50123,
        None,
        9200,
    )
    assert second.server.health_port is None
    assert first.start_tier.state_path == tmp_path / "start.npz.0"
    assert second.start_tier.state_path == tmp_path / "start.npz.1"
    assert second.quality.state_dir == tmp_path / "quality" / "worker-1"
