"""End-to-end fixtures: the REAL hub, started as a ``twistd`` process.

``start_hub(*flags)`` launches ``twistd -n --pidfile= mercure --listen
tcp:PORT:interface=127.0.0.1 *flags`` on a free loopback port, waits
(bounded) until the port accepts connections and returns a ``HubProcess``.
Every hub a test started is stopped at teardown (SIGTERM, then SIGKILL after
a bound), and the log of each is attached to the report of a failed test.

Nothing here may hang: every wait has a deadline, and a watchdog
(``faulthandler.dump_traceback_later``) kills the whole run, with the stacks
of every thread, if one e2e test exceeds ``E2E_TEST_TIMEOUT`` seconds.
"""

from __future__ import annotations

import faulthandler
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

from ._support import HubProcess, free_port

E2E_TEST_TIMEOUT = 120.0

StartHub = Callable[..., HubProcess]


@pytest.fixture
def start_hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StartHub]:
    """Factory: ``start_hub("--dev", "--heartbeat", "1")`` -> a running hub.

    ``port=`` reuses a port (restart on the same address).
    """
    hubs: list[HubProcess] = []
    request.node._mercure_hubs = hubs

    def start(*flags: str, port: int | None = None) -> HubProcess:
        index = len(hubs)
        hub = HubProcess(port or free_port(), tuple(flags), tmp_path / f"hub-{index}.log")
        hubs.append(hub)
        hub.start()
        return hub

    yield start
    for hub in hubs:
        hub.terminate()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for i, hub in enumerate(getattr(item, "_mercure_hubs", [])):
            report.sections.append((f"hub {i} log ({report.when}, port {hub.port})", hub.log()))
    return report


@pytest.fixture(autouse=True)
def _e2e_watchdog() -> Iterator[None]:
    """Last-resort bound: a stuck e2e test kills the run with every stack."""
    faulthandler.dump_traceback_later(E2E_TEST_TIMEOUT, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()

