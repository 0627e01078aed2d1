"""Fenced writes at the DNS server: a deposed fleet leader's late write is refused by
named itself (the fence TXT is a prerequisite of every UPDATE), not by our bookkeeping."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

import dns.message
import dns.rcode
import pytest

from failover import plan
from failover.dns.base import DnsError, DnsFenced, fence_epoch, fence_name
from failover.localdns import LocalNamed
from failover.records import RecordSet
from tests.dns.conftest import bind_adapter
from tests.dns.test_bind import dig, many, marked, sync

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


class DeposingProxy:
    """A TCP relay to named that runs `depose` once, right after named refused a message
    and before the writer hears of it: a newer leader takes the fence mid-write."""

    def __init__(self, upstream: int, depose: Callable[[], None]) -> None:
        self.upstream, self.depose, self.deposed = upstream, depose, False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        with client, socket.create_connection(("127.0.0.1", self.upstream)) as up:
            while True:
                head = client.recv(2, socket.MSG_WAITALL)
                if len(head) < 2:
                    return
                up.sendall(head + client.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL))
                rhead = up.recv(2, socket.MSG_WAITALL)
                answer = up.recv(int.from_bytes(rhead, "big"), socket.MSG_WAITALL)
                if not self.deposed and dns.message.from_wire(
                        answer, ignore_trailing=True, keyring=False).rcode() == dns.rcode.REFUSED:
                    self.deposed = True
                    self.depose()
                client.sendall(rhead + answer)

    def close(self) -> None:
        self.server.close()


def test_a_leader_deposed_while_a_refused_name_is_isolated_writes_nothing(
        named: LocalNamed) -> None:
    """The halved re-sends that isolate a name named refuses carry the fence too: a newer
    leader taking the fence between them stops the deposed leader's write there."""
    old, new = bind_adapter(named), bind_adapter(named)
    old.fence(7, "us-east-1")
    assert old.take_over()
    new.fence(12, "us-west-2")
    proxy = DeposingProxy(named.port, lambda: new.take_over() or None)
    try:
        old.port, old.transport = proxy.port, "tcp"  # its writes go through the proxy
        keys, desired = many(20)
        bad = "api_v2.example.test."  # BIND's check-names refuses it as an A owner
        keys |= {(bad, "A"), (f"_failover.{bad}", "TXT")}
        desired.insert(10, R(bad, "A", 60, ["127.0.1.1"]))
        actual = bind_adapter(named).read(keys)
        with pytest.raises(DnsError):
            old.apply(marked(plan.diff(desired, actual, keys)), actual)
        assert proxy.deposed
        assert fence_epoch(new.read_fence()) == 12
        # not one of the names the deposed leader sent after it lost the fence was written
        assert dig(named, "r0.example.test.", "A") == set()
        assert dig(named, "r19.example.test.", "A") == set()
    finally:
        proxy.close()


def test_a_leader_past_its_deadline_sends_nothing(named: LocalNamed) -> None:
    from failover.dns.base import WriterDeposed

    leader = bind_adapter(named)
    leader.fence(7, "us-east-1")
    sync(leader, [R(*API, 30, ["127.0.1.1"])], {API})
    serial = leader.serial()
    leader.may_write = lambda: False  # checked before each message, retries included
    actual = leader.read({API})
    changes = plan.diff([R(*API, 30, ["127.0.2.2"])], actual, {API})
    with pytest.raises(WriterDeposed):
        leader.apply(changes, actual)
    assert dig(named, *API) == {"127.0.1.1"} and leader.serial() == serial
