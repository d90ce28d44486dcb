"""A real redis-server per test module (loopback, no persistence), stopped at the end."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.state.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A fresh, empty redis-server for one test."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    try:
        yield server
    finally:
        server.stop()
