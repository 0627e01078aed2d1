"""The RFC 2136 adapter against a real named: writes, served answers, conflicts, failures."""

from __future__ import annotations

import base64
import logging
import os
import socket
import threading
from pathlib import Path

import dns.message
import dns.query
import dns.rdatatype
import dns.tsigkeyring
import dns.update
import pytest

from failover import plan
from failover.config import load_config
from failover.dns import make_adapter
from failover.dns.base import DnsConflict, DnsRejected, DnsUnavailable
from failover.dns.bind import BindAdapter
from failover.dns.ownership import Registry, marker_value
from failover.localdns import LocalNamed, write_private
from failover.records import RecordSet
from tests.dns.conftest import bind_adapter

R = RecordSet.make
API_A = ("api.example.test.", "A")
API_AAAA = ("api.example.test.", "AAAA")
WWW = ("www.example.test.", "CNAME")
KEYS = {API_A, API_AAAA, WWW}


def dig(named: LocalNamed, name: str, rtype: str) -> set[str]:
    """An independent real DNS query (not through the adapter)."""
    answer = dns.query.udp(dns.message.make_query(name, rtype), "127.0.0.1", port=named.port,
                           timeout=2)
    return {rd.to_text() for rrset in answer.answer
            if dns.rdatatype.to_text(rrset.rdtype) == rtype for rd in rrset}


def sync(adapter, desired: list[RecordSet], keys=KEYS) -> plan.ChangeSet:
    actual = adapter.read(keys)
    changes = plan.diff(desired, actual, keys)
    adapter.apply(changes, actual)
    return changes


def foreign_update(named: LocalNamed, name: str, rtype: str, *values: str) -> None:
    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    upd = dns.update.UpdateMessage(named.dynamic_zone, keyring=keyring)
    upd.replace(name, 60, rtype, *values)
    assert dns.query.udp(upd, "127.0.0.1", port=named.port, timeout=2).rcode() == 0


def test_create_upsert_delete_a_aaaa_cname_served_as_planned(named: LocalNamed) -> None:
    a = bind_adapter(named)
    sync(a, [R(*API_A, 30, ["127.0.1.1", "127.0.1.2"]), R(*API_AAAA, 30, ["::1"]),
             R(*WWW, 30, ["api.example.test."])])
    assert dig(named, *API_A) == {"127.0.1.1", "127.0.1.2"}
    assert dig(named, *API_AAAA) == {"::1"}
    assert dig(named, *WWW) == {"api.example.test."}
    changes = sync(a, [R(*API_A, 30, ["127.0.2.1"]), R(*API_AAAA, 30, ["::2"])])
    assert sorted(c.action for c in changes.changes) == ["delete", "upsert", "upsert"]
    assert dig(named, *API_A) == {"127.0.2.1"} and dig(named, *API_AAAA) == {"::2"}
    assert dig(named, *WWW) == set()
    # a second plan after applying is empty
    assert not plan.diff([R(*API_A, 30, ["127.0.2.1"]), R(*API_AAAA, 30, ["::2"])],
                         a.read(KEYS), KEYS)


def test_foreign_records_are_untouched(named: LocalNamed) -> None:
    foreign_update(named, "other.example.test.", "A", "127.0.9.9")
    foreign_update(named, "api.example.test.", "TXT", '"hello"')
    a = bind_adapter(named)
    sync(a, [R(*API_A, 30, ["127.0.1.1"])])
    sync(a, [R(*API_A, 30, ["127.0.2.1"])])
    assert dig(named, "other.example.test.", "A") == {"127.0.9.9"}
    assert dig(named, "api.example.test.", "TXT") == {'"hello"'}


def test_concurrent_edit_is_detected_and_replanned(named: LocalNamed) -> None:
    a = bind_adapter(named)
    sync(a, [R(*API_A, 30, ["127.0.1.1"])])
    stale = a.read(KEYS)
    foreign_update(named, *API_A, "127.0.7.7")  # a person edits after our read
    changes = plan.diff([R(*API_A, 30, ["127.0.2.1"])], stale, KEYS)
    with pytest.raises(DnsConflict, match="changed since it was read"):
        a.apply(changes, stale)
    assert dig(named, *API_A) == {"127.0.7.7"}  # their edit was not clobbered blindly
    sync(a, [R(*API_A, 30, ["127.0.2.1"])])  # read again, plan again: converges
    assert dig(named, *API_A) == {"127.0.2.1"}


def test_create_conflicts_when_someone_created_it_first(named: LocalNamed) -> None:
    a = bind_adapter(named)
    stale = a.read(KEYS)
    foreign_update(named, *API_A, "127.0.7.7")
    with pytest.raises(DnsConflict):
        a.apply(plan.diff([R(*API_A, 30, ["127.0.1.1"])], stale, KEYS), stale)
    assert dig(named, *API_A) == {"127.0.7.7"}  # the other writer's value stands


def test_wrong_tsig_key_gives_a_clear_error(named: LocalNamed) -> None:
    a = bind_adapter(named, secret="d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXkh")
    with pytest.raises(DnsRejected, match="BADSIG") as info:
        a.apply(plan.diff([R(*API_A, 30, ["127.0.1.1"])], [], KEYS), [])
    assert "check provider.tsig" in str(info.value)
    assert named.tsig_secret not in str(info.value)
    assert dig(named, *API_A) == set()


def test_axfr_refused_falls_back_to_queries(named: LocalNamed,
                                            caplog: pytest.LogCaptureFixture) -> None:
    sync(bind_adapter(named), [R(*API_A, 30, ["127.0.1.1"])])
    keyless = bind_adapter(named, tsig=False)
    with caplog.at_level(logging.WARNING):
        assert keyless.read(KEYS) == [R(*API_A, 30, ["127.0.1.1"])]
    assert "axfr_refused" in caplog.text


def test_a_zone_that_cannot_be_listed_says_once_that_nothing_is_pruned(
        named: LocalNamed, caplog: pytest.LogCaptureFixture) -> None:
    mark = ("_failover.old.example.test.", "TXT")
    old = [R("old.example.test.", "A", 30, ["127.0.6.6"]),
           R(*mark, 30, [marker_value("failover")])]
    sync(bind_adapter(named), old, keys={("old.example.test.", "A"), mark})
    registry = Registry("_failover", "failover")
    # a listing (AXFR) finds the name this owner marked outside the keys asked for
    assert set(bind_adapter(named).read(KEYS, registry)) == set(old)
    keyless = bind_adapter(named, tsig=False)  # AXFR refused: queries find the keys only
    with caplog.at_level(logging.WARNING):
        assert keyless.read(KEYS, registry) == []
        assert keyless.read(KEYS, registry) == []
    assert caplog.text.count("event=orphans_not_listed") == 1


def test_server_down_then_back_converges(named: LocalNamed) -> None:
    a = bind_adapter(named)
    sync(a, [R(*API_A, 30, ["127.0.1.1"])])
    actual = a.read(KEYS)
    named.stop()
    with pytest.raises(DnsUnavailable):
        a.apply(plan.diff([R(*API_A, 30, ["127.0.2.1"])], actual, KEYS), actual)
    named.restart()
    sync(a, [R(*API_A, 30, ["127.0.2.1"])])
    assert dig(named, *API_A) == {"127.0.2.1"}


def test_500_records_in_one_update_over_tcp(named: LocalNamed) -> None:
    a = bind_adapter(named)
    keys = {(f"n{i}.example.test.", "A") for i in range(500)}
    desired = [R(name, t, 60, [f"127.1.{i // 250}.{i % 250 + 1}"])
               for i, (name, t) in enumerate(sorted(keys))]
    actual = a.read(keys)
    report = a.apply(plan.diff(desired, actual, keys), actual)
    assert report.messages == 1 and report.changes == 500
    assert {(r.name, r.values) for r in a.read(keys)} == {(r.name, r.values) for r in desired}


def many(n: int, value: str = "127.0.1.1") -> tuple[set[plan.ManagedKey], list[RecordSet]]:
    """n names, each with an A record and its ownership marker."""
    keys: set[plan.ManagedKey] = set()
    desired = []
    for i in range(n):
        name = f"r{i}.example.test."
        keys |= {(name, "A"), (f"_failover.{name}", "TXT")}
        desired += [R(name, "A", 60, [value]),
                    R(f"_failover.{name}", "TXT", 60, ['"heritage=failover,owner=failover"'])]
    return keys, desired


def marked(changes: plan.ChangeSet) -> plan.ChangeSet:
    return plan.ChangeSet(zone=changes.zone, changes=changes.changes, existing=changes.existing,
                          managed=changes.managed, marker_prefix="_failover")


def test_3000_names_are_written_in_several_messages_without_error(named: LocalNamed) -> None:
    a = bind_adapter(named)
    keys, desired = many(3000)
    actual = a.read(keys)
    report = a.apply(marked(plan.diff(desired, actual, keys)), actual)
    assert report.changes == 6000 and report.messages > 1 and not report.rejected
    assert set(a.read(keys)) == set(desired)
    # and all of them fail over in one write
    actual = a.read(keys)
    _, moved = many(3000, "127.0.2.1")
    report = a.apply(marked(plan.diff(moved, actual, keys)), actual)
    assert report.changes == 3000 and report.messages > 1
    assert dig(named, "r2999.example.test.", "A") == {"127.0.2.1"}


class DroppingProxy:
    """A TCP relay to named that, once, forwards the `nth` message but drops its answer and
    closes the connection: the server applied it, the client never heard."""

    def __init__(self, upstream: int, nth: int) -> None:
        self.upstream, self.nth, self.seen, self.dropped = upstream, nth, 0, False
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

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
                body = client.recv(int.from_bytes(head, "big"), socket.MSG_WAITALL)
                up.sendall(head + body)
                rhead = up.recv(2, socket.MSG_WAITALL)
                answer = up.recv(int.from_bytes(rhead, "big"), socket.MSG_WAITALL)
                self.seen += 1
                if self.seen == self.nth and not self.dropped:
                    self.dropped = True
                    return  # closes the client's connection without an answer
                client.sendall(rhead + answer)

    def close(self) -> None:
        self.server.close()


def test_a_connection_closed_mid_write_loses_nothing_and_applies_nothing_twice(
        named: LocalNamed) -> None:
    proxy = DroppingProxy(named.port, nth=2)
    try:
        direct = bind_adapter(named)
        a = bind_adapter(named)
        a.port, a.transport = proxy.port, "tcp"  # writes through the proxy (TCP only)
        keys, desired = many(2000)
        actual = direct.read(keys)
        # the second message was applied but unanswered: sent again on a new connection,
        # its prerequisites (the records must be absent) refuse it; the other messages
        # go on, and the write reports the conflict
        with pytest.raises(DnsConflict):
            a.apply(marked(plan.diff(desired, actual, keys)), actual)
        assert proxy.dropped
        # the controller's answer to a conflict: read again and re-plan the rest
        actual = direct.read(keys)
        rest = marked(plan.diff(desired, actual, keys))
        assert not rest.changes  # every change arrived once: none lost, none left to do
        assert sorted(direct.read(keys), key=lambda r: r.sort_key) == sorted(
            desired, key=lambda r: r.sort_key)
    finally:
        proxy.close()


def test_a_record_set_the_server_refuses_is_isolated_and_the_rest_written(
        named: LocalNamed) -> None:
    a = bind_adapter(named)
    keys, desired = many(300)
    bad = "api_v2.example.test."  # BIND's check-names refuses it as an A owner
    keys |= {(bad, "A"), (f"_failover.{bad}", "TXT")}
    desired.insert(150, R(bad, "A", 60, ["127.0.1.1"]))
    actual = a.read(keys)
    report = a.apply(marked(plan.diff(desired, actual, keys)), actual)
    assert list(report.rejected) == [bad]
    assert "REFUSED" in report.rejected[bad] and "check-names" in report.rejected[bad]
    assert dig(named, "r0.example.test.", "A") == {"127.0.1.1"}
    assert dig(named, "r299.example.test.", "A") == {"127.0.1.1"}
    assert dig(named, bad, "A") == set()
    assert report.messages < 40  # halves, not one message per name



def file_keyed(named: LocalNamed, tmp_path: Path) -> BindAdapter:
    """The adapter `failover run` makes for a config whose TSIG secret is in a file (named's
    secret written there)."""
    write_private(tmp_path / "tsig.secret", named.tsig_secret + "\n")
    (tmp_path / "f.yaml").write_text(f"""
zone: example.test.
provider:
  type: bind
  server: 127.0.0.1
  port: {named.port}
  tsig: {{name: {named.tsig_name}, secret_file: ./tsig.secret}}
checks: {{web: {{type: TCP, port: 80}}}}
regions: {{east: {{endpoints: [{{address: 127.0.1.1, check: web}}]}}}}
records: [{{name: api.example.test., type: A, ttl: 30, policy: failover, order: [east]}}]
""")
    adapter = make_adapter(load_config(tmp_path / "f.yaml"))
    assert isinstance(adapter, BindAdapter)
    return adapter


def test_a_secret_rotated_in_its_file_is_taken_up_at_the_servers_first_refusal(
        named: LocalNamed, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = file_keyed(named, tmp_path)
    sync(a, [R(*API_A, 30, ["127.0.1.1"])])
    new = base64.b64encode(os.urandom(32)).decode()
    named.rekey(new)  # the server first, then the file: as an operator rotates it
    write_private(tmp_path / "tsig.secret", new + "\n")
    with caplog.at_level(logging.WARNING):
        sync(a, [R(*API_A, 30, ["127.0.2.1"])])  # read and written without a reload
    assert dig(named, *API_A) == {"127.0.2.1"}
    assert (f"TSIG secret re-read from {tmp_path / 'tsig.secret'} after BADSIG: changed"
            in caplog.text)
    assert new not in caplog.text


def test_a_secret_file_the_server_still_refuses_is_named_in_the_error(
        named: LocalNamed, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = file_keyed(named, tmp_path)
    new = base64.b64encode(os.urandom(32)).decode()
    named.rekey(new)  # the file not rewritten (yet)
    path = tmp_path / "tsig.secret"
    with caplog.at_level(logging.WARNING):
        for _ in range(2):
            with pytest.raises(DnsRejected) as info:
                sync(a, [R(*API_A, 30, ["127.0.1.1"])])
            assert str(info.value).endswith(
                f"(BADSIG: the secret does not match): check provider.tsig; TSIG secret "
                f"re-read from {path} after BADSIG: unchanged, and the server still refuses "
                f"it: fix the key on the server or in {path}"), info.value
    assert caplog.text.count("event=tsig_reread") == 1  # the second refusal read nothing
    write_private(path, new + "\n")  # fixed within the minute: read at the next refusal
    sync(a, [R(*API_A, 30, ["127.0.1.1"])])
    assert dig(named, *API_A) == {"127.0.1.1"}
