"""The zone-file adapter against a real named: byte-for-byte edits, serials, checks, reloads."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from failover import plan
from failover.dns.base import DnsConflict, DnsError
from failover.dns.ownership import Registry, marker_value
from failover.dns.zonefile import scan
from failover.health import initial_snapshot
from failover.localdns import LocalNamed
from failover.reconcile import plan_step, read_actual
from failover.records import RecordSet
from policies import Overrides
from tests.builders import config
from tests.dns.conftest import bind_adapter, zonefile_adapter
from tests.dns.test_bind import dig

R = RecordSet.make
API_A = ("api.files.test.", "A")
WWW = ("www.files.test.", "CNAME")
KEYS = {API_A, WWW}

EXTRA = """; hand-written section: keep me exactly
other   IN A     127.0.9.9   ; a foreign record
api     IN A     127.0.0.5
        IN TXT   "inherits api"
www     IN TXT   "text at www"
"""


def serial_of(text: str) -> int:
    return int(re.search(r"\(\s*(\d+)", text).group(1))  # type: ignore[union-attr]


def sync(adapter, desired: list[RecordSet], keys=KEYS) -> None:
    actual = adapter.read(keys)
    adapter.apply(plan.diff(desired, actual, keys), actual)


def test_rewrites_only_managed_records_and_keeps_the_rest(named: LocalNamed) -> None:
    path = named.file_zone_path
    path.write_text(path.read_text() + EXTRA)
    named.rndc("reload", "files.test")
    before = path.read_text()
    a = zonefile_adapter(named)
    sync(a, [R(*API_A, 30, ["127.0.1.1", "127.0.1.2"])], keys={API_A})
    after = path.read_text()
    assert dig(named, *API_A) == {"127.0.1.1", "127.0.1.2"}
    assert dig(named, "other.files.test.", "A") == {"127.0.9.9"}
    # the TXT that inherited api's owner still belongs to api
    assert dig(named, "api.files.test.", "TXT") == {'"inherits api"'}
    # every line but the serial and the managed record is kept byte for byte
    kept = [line for line in before.splitlines() if "127.0.0.5" not in line and "serial" not in line]
    for line in kept:
        if line.strip().startswith("IN TXT"):
            assert f"api.files.test.{line}" in after
        else:
            assert line in after.splitlines(), line
    assert "; hand-written section: keep me exactly" in after


def test_serial_strictly_increases(named: LocalNamed) -> None:
    a = zonefile_adapter(named)
    path = named.file_zone_path
    serials = [serial_of(path.read_text())]
    for i in range(3):
        sync(a, [R(*API_A, 30, [f"127.0.1.{i + 1}"])], keys={API_A})
        serials.append(serial_of(path.read_text()))
    assert serials == sorted(set(serials)) and len(serials) == 4
    assert dig(named, *API_A) == {"127.0.1.3"}


def test_checkzone_failure_leaves_the_old_file(named: LocalNamed) -> None:
    path = named.file_zone_path
    path.write_text(path.read_text() + 'www IN TXT "text at www"\n')
    named.rndc("reload", "files.test")
    before = path.read_text()
    a = zonefile_adapter(named)
    actual = a.read(KEYS)
    # a CNAME beside the TXT that stays: named-checkzone refuses "CNAME and other data"
    with pytest.raises(DnsError, match="named-checkzone rejected"):
        a.apply(plan.diff([R(*WWW, 30, ["api.files.test."])], actual, KEYS), actual)
    assert path.read_text() == before
    assert not list(path.parent.glob(".*.tmp")) and not list(path.parent.glob("*.check"))


def test_edit_after_read_is_a_conflict(named: LocalNamed) -> None:
    a = zonefile_adapter(named)
    stale = a.read(KEYS)
    path = named.file_zone_path
    path.write_text(path.read_text() + "api IN A 127.0.7.7\n")
    with pytest.raises(DnsConflict):
        a.apply(plan.diff([R(*API_A, 30, ["127.0.1.1"])], stale, KEYS), stale)
    assert "127.0.7.7" in path.read_text()


def test_dynamic_zone_is_refused_or_frozen(named: LocalNamed) -> None:
    # an RFC 2136 update makes example.test dynamic (named keeps a journal)
    dyn = bind_adapter(named)
    keys = {("api.example.test.", "A")}
    dyn.apply(plan.diff([R("api.example.test.", "A", 30, ["127.0.1.1"])], [], keys), [])
    path = named.directory / "example.test.zone"
    refusing = zonefile_adapter(named, zone="example.test.", path=path)
    with pytest.raises(DnsError, match="dynamic zone"):
        refusing.read(keys)
    freezing = zonefile_adapter(named, zone="example.test.", path=path, freeze=True)
    actual = freezing.read(keys)
    assert actual == [R("api.example.test.", "A", 30, ["127.0.1.1"])]
    freezing.apply(plan.diff([R("api.example.test.", "A", 30, ["127.0.2.1"])], actual, keys),
                   actual)
    assert dig(named, "api.example.test.", "A") == {"127.0.2.1"}
    # thawed: dynamic updates work again
    actual = dyn.read(keys)
    dyn.apply(plan.diff([R("api.example.test.", "A", 30, ["127.0.3.1"])], actual, keys), actual)
    assert dig(named, "api.example.test.", "A") == {"127.0.3.1"}


SECRETS = {"FAILOVER_API_TOKEN": "token-c0ffee", "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEY",
           "AWS_SECRET_ACCESS_KEY": "aws-secret-c0ffee", "FAILOVER_TSIG_SECRET": "tsig-c0ffee"}


def _dumping(out: Path, command: str) -> str:
    """A command that writes its environment to `out`, then runs `command`."""
    return f"sh -c {shlex.quote(f'env > {out}; exec {command}')}"


def test_commands_see_no_secret_of_the_controller(named: LocalNamed, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("ZONE_TOOLS_CONF", "/etc/zone-tools.conf")  # one the config passes on
    rndc = " ".join(named.rndc_command)
    a = zonefile_adapter(named, reload=_dumping(tmp_path / "reload.env", f"{rndc} reload {{zone}}"),
                         check_command=_dumping(tmp_path / "check.env",
                                                "named-checkzone -q {zone} {file}"),
                         pass_env=("ZONE_TOOLS_CONF",))
    sync(a, [R(*API_A, 30, ["127.0.1.1"])], keys={API_A})
    assert dig(named, *API_A) == {"127.0.1.1"}  # the reload ran (and the check passed)
    for dump in ("reload.env", "check.env"):
        seen = dict(line.split("=", 1) for line in (tmp_path / dump).read_text().splitlines()
                    if "=" in line)
        assert not set(SECRETS) & set(seen), dump
        assert not [v for v in SECRETS.values() if v in (tmp_path / dump).read_text()], dump
        assert seen.get("ZONE_TOOLS_CONF") == "/etc/zone-tools.conf", dump
        assert "PATH" in seen, dump


def test_scan_understands_parentheses_origin_and_inherited_owners() -> None:
    text = """$ORIGIN z.test.
@ IN SOA ns host ( 1 2
   3 4 5 ) ; multi-line
  IN NS ns
$ORIGIN sub.z.test.
a 60 IN A 127.0.0.1
  IN AAAA ::1 ; same owner
b.z.test. IN CNAME a
"""
    entries = scan(text.splitlines(keepends=True), "z.test.")
    assert [(e.owner, e.type, e.first, e.last, e.inherited) for e in entries] == [
        ("z.test.", "SOA", 1, 2, False), ("z.test.", "NS", 3, 3, True),
        ("a.sub.z.test.", "A", 5, 5, False), ("a.sub.z.test.", "AAAA", 6, 6, True),
        ("b.z.test.", "CNAME", 7, 7, False)]


LEFT_BEHIND = """old                IN A    127.0.6.6
_failover.old      IN TXT  "heritage=failover,owner=failover"
theirs             IN A    127.0.7.7
_failover.theirs   IN TXT  "heritage=failover,owner=west"
hand               IN A    127.0.8.8
"""


def test_a_name_it_marked_that_left_the_config_is_pruned_from_the_file(
        named: LocalNamed) -> None:
    path = named.file_zone_path
    path.write_text(path.read_text() + LEFT_BEHIND)
    named.rndc("reload", "files.test")
    cfg = config({"r1": ["127.0.1.1"]}, [{"name": "api.files.test.", "type": "A",
                                          "policy": "weighted", "weights": {"r1": 1}}],
                 zone="files.test.")
    a = zonefile_adapter(named)
    actual = read_actual(cfg, a)
    step = plan_step(cfg, initial_snapshot(cfg, 0), Overrides(), {}, 0, actual)
    assert step.pruned == ["old.files.test."]
    a.apply(step.changes, actual)
    assert dig(named, "old.files.test.", "A") == set()
    assert dig(named, "_failover.old.files.test.", "TXT") == set()
    assert dig(named, "api.files.test.", "A") == {"127.0.1.1"}
    text = path.read_text()
    assert "old " not in text and "_failover.old" not in text
    for line in LEFT_BEHIND.splitlines()[2:]:  # another owner's and nobody's: kept as written
        assert line in text.splitlines(), line
    assert not plan_step(cfg, initial_snapshot(cfg, 0), Overrides(), {}, 0,
                         read_actual(cfg, a)).changes


def test_a_frozen_zone_lists_its_marked_names_from_the_file_and_reads_them_served(
        named: LocalNamed) -> None:
    dyn = bind_adapter(named)
    api, old = ("api.example.test.", "A"), ("old.example.test.", "A")
    mark = ("_failover.old.example.test.", "TXT")
    dyn.apply(plan.diff([R(*api, 30, ["127.0.1.1"])], [], {api}), [])  # dynamic: a journal
    path = named.directory / "example.test.zone"
    freezing = zonefile_adapter(named, zone="example.test.", path=path, freeze=True)
    written = [R(*old, 30, ["127.0.6.6"]), R(*mark, 30, [marker_value("failover")])]
    freezing.apply(plan.diff(written, [], {old, mark}), [])  # through the file, as ours are
    # a dynamic update since: the journal is ahead of the file for old
    dyn.apply(plan.diff([R(*old, 30, ["127.0.6.7"])], [written[0]], {old}), [written[0]])
    registry = Registry("_failover", "failover")
    assert set(freezing.read({api}, registry)) == {
        R(*api, 30, ["127.0.1.1"]), R(*old, 30, ["127.0.6.7"]), written[1]}
    assert freezing.read({api}) == [R(*api, 30, ["127.0.1.1"])]
