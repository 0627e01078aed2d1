"""Fenced writes at the DNS server: a deposed fleet leader's late write is refused by
named itself (the fence TXT is a prerequisite of every UPDATE), not by our bookkeeping."""

from __future__ import annotations

import pytest

from failover import plan
from failover.dns.base import DnsFenced, fence_epoch, fence_name
from failover.localdns import LocalNamed
from failover.records import RecordSet
from tests.dns.conftest import bind_adapter
from tests.dns.test_bind import dig, sync

R = RecordSet.make
API = ("api.example.test.", "A")


def test_a_newer_leader_takes_the_fence_and_the_old_leaders_late_write_is_refused(
        named: LocalNamed) -> None:
    old, new = bind_adapter(named), bind_adapter(named)
    old.fence(7, "us-east-1")
    sync(old, [R(*API, 30, ["127.0.1.1"])], {API})
    assert fence_epoch(old.read_fence()) == 7
    assert dig(named, fence_name("example.test."), "TXT") == {'"epoch=7" "leader=us-east-1"'}

    new.fence(12, "us-west-2")
    assert new.take_over()  # the new leader's first write replaces the fence atomically
    assert fence_epoch(new.read_fence()) == 12
    sync(new, [R(*API, 30, ["127.0.2.2"])], {API})

    # the old leader, planned on a fresh read, writes late: named refuses it by the fence
    actual = old.read({API})
    changes = plan.diff([R(*API, 30, ["127.0.1.1"])], actual, {API})
    with pytest.raises(DnsFenced) as caught:
        old.apply(changes, actual)
    assert caught.value.epoch == 12
    assert dig(named, *API) == {"127.0.2.2"}
    # and it cannot take the fence back either
    old.fence(7, "us-east-1")
    old._fenced = None
    with pytest.raises(DnsFenced):
        old.take_over()
    assert dig(named, *API) == {"127.0.2.2"}


def test_two_new_leaders_racing_for_the_fence_only_the_newer_holds_it(named: LocalNamed) -> None:
    a, b = bind_adapter(named), bind_adapter(named)
    b.fence(21, "b")
    assert b.take_over()
    a.fence(20, "a")  # elected earlier, slower to write
    with pytest.raises(DnsFenced):
        a.take_over()
    assert fence_epoch(a.read_fence()) == 21


def test_without_a_fleet_nothing_is_fenced(named: LocalNamed) -> None:
    a = bind_adapter(named)
    sync(a, [R(*API, 30, ["127.0.1.1"])], {API})
    assert a.read_fence() == []
