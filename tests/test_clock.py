"""The controller's clock does not follow wall-clock steps (NTP corrections, manual sets)."""

from __future__ import annotations

import time

import pytest

from failover.controller import steady_clock


def test_a_wall_clock_step_does_not_move_the_controller_clock(
        monkeypatch: pytest.MonkeyPatch) -> None:
    clock = steady_clock()
    before = clock()
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 3600)  # stepped back an hour
    after = clock()
    assert 0 <= after - before < 5
    monkeypatch.setattr(time, "time", lambda: real() + 3600)  # and forward
    assert 0 <= clock() - after < 5
