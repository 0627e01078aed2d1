import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, settings

from failover.localdns import LocalNamed, free_port, named_binary
from tests.service_env import EAST, WEST, Env

# CI runs more examples; local runs stay quick. Property tests never touch the network.
settings.register_profile("ci", max_examples=400, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=100, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
# make mutate runs every covering test once per mutant: few examples, no shrinking (a
# mutant is caught by the first failing example; shrinking it only costs time)
settings.register_profile("mutate", max_examples=20, deadline=None,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate],
                          suppress_health_check=list(HealthCheck))
settings.load_profile("mutate" if os.environ.get("FAILOVER_MUTATE") else
                      "ci" if os.environ.get("CI") == "true" else "dev")

# fixtures that start a server or listen on loopback: their tests are marked `servers`,
# which `make mutate` leaves out (it runs only tests that need no sockets)
SERVER_FIXTURES = {"named", "second_named", "env", "moto_server", "plain_moto_server", "etcd",
                   "store", "fleet", "net", "endpoints", "browser", "server"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.servers)


@pytest.fixture
def named(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalNamed]:
    """A private named on loopback; in CI a missing BIND fails instead of skipping.

    A test marked `secondary` gets a secondary on ::1 (same port, in the NS set)."""
    if named_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("named is not installed: make test installs bind9")
        pytest.skip("named is not installed (apt-get install bind9 bind9-utils)")
    secondaries = ["::1"] if request.node.get_closest_marker("secondary") else []
    server = LocalNamed.start(tmp_path / "named", secondaries=secondaries)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def env(tmp_path: Path, named: LocalNamed) -> Iterator[Env]:
    """The controller service under test (tests/service_env.py), cleaned up after."""
    (tmp_path / "tsig.secret").write_text(named.tsig_secret)
    port = free_port(EAST)
    e = Env(dir=tmp_path, named=named, http_port=port, api_port=free_port())
    e.write_config()
    try:
        e.start_region(EAST)
        e.start_region(WEST)
        yield e
    finally:
        e.stop_all(signal.SIGKILL)
