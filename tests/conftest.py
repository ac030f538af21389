"""Fixtures shared by unit and e2e tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real ``redis-server`` of this test's own on a free loopback port
    (``.stop()`` and ``.start()`` again keep the port); stopped at teardown."""
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()
