"""`failover import`: a config written from a zone that already serves, against
moto_server (Route 53, with health checks) and named (AXFR with TSIG), each of 1,000
names; `plan` on it writes only ownership markers, and after they are written, nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import boto3
import dns.name
import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from failover.config import parse_config
from failover.importing import Candidate, Part, assemble
from failover.localdns import LocalNamed
from failover.reconcile import Ledger
from failover.records import RecordSet
from policies.model import Decision
from tests.builders import ROOT
from tests.dns.test_route53 import moto_server  # noqa: F401  (fixture)

ZONE = "example.test."


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(key, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("FAILOVER_CONFIG", raising=False)


def failover(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "failover", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, check=False)


def plan_json(cfg: Path) -> tuple[int, dict[str, Any]]:
    got = failover("plan", "--json", "--config", str(cfg))
    assert got.returncode in (0, 2), got.stdout + got.stderr
    return got.returncode, json.loads(got.stdout)


def only_markers(plan: dict[str, Any]) -> bool:
    return all(c["action"] == "create" and c["type"] == "TXT"
               and c["name"].startswith("_failover.") for c in plan["changes"])


def adopt_then_nothing(cfg: Path, names: int) -> None:
    """The promise: validate ok, the plan writes one marker per name and nothing else, a
    run writes them, and the plan after it is empty."""
    valid = failover("validate", "--config", str(cfg))
    assert valid.returncode == 0, valid.stdout + valid.stderr
    code, first = plan_json(cfg)
    assert code == 2
    assert first["blocked"] == {}
    assert only_markers(first), [c for c in first["changes"] if c["type"] != "TXT"][:3]
    assert len(first["changes"]) == names == len(first["adopted"])
    run = failover("run", "--once", "--config", str(cfg))
    assert run.returncode == 0, run.stderr[-3000:]
    code, again = plan_json(cfg)
    assert (code, again["changes"], again["blocked"]) == (0, [], {})


# ------------------------------------------------------------------------- Route 53

def _rr(name: str, values: list[str], ttl: int = 60, **routing: Any) -> dict[str, Any]:
    return {"Action": "CREATE", "ResourceRecordSet": {
        "Name": name, "Type": "A", "TTL": ttl,
        "ResourceRecords": [{"Value": v} for v in values], **routing}}


def _check(client: Any, ref: str, **config: Any) -> str:
    hc = client.create_health_check(CallerReference=ref, HealthCheckConfig=config)
    return str(hc["HealthCheck"]["Id"])


def route53_zone(client: Any) -> tuple[str, list[str]]:
    """A zone of 1,000 imported names (failover, weighted, latency, with checks) and the
    record sets import cannot express; returns the zone id and what must be noted."""
    zid = client.create_hosted_zone(Name=ZONE, CallerReference="import")["HostedZone"]["Id"]
    zid = zid.split("/")[-1]
    web = {"Type": "HTTP", "Port": 80, "ResourcePath": "/health", "RequestInterval": 10,
           "FailureThreshold": 3}
    east = _check(client, "e", IPAddress="127.0.1.1", **web)
    west = _check(client, "w", IPAddress="127.0.2.1", **web)
    tls = {"Type": "HTTPS_STR_MATCH", "Port": 443, "ResourcePath": "/", "SearchString": "ok",
           "RequestInterval": 30, "FailureThreshold": 2}
    east_tls = _check(client, "et", IPAddress="127.0.1.2", **tls)
    west_tls = _check(client, "wt", IPAddress="127.0.2.2", **tls)
    changes = []
    for i in range(400):  # failover; every tenth answers from an address of its own (pools)
        primary = f"127.0.3.{i // 10 + 1}" if i % 10 == 0 else "127.0.1.1"
        changes += [
            _rr(f"f{i}.{ZONE}", [primary], SetIdentifier="primary", Failover="PRIMARY",
                **({"HealthCheckId": east} if i % 10 else {})),
            _rr(f"f{i}.{ZONE}", ["127.0.2.1"], SetIdentifier="secondary", Failover="SECONDARY",
                HealthCheckId=west)]
    for i in range(300):  # weighted
        changes += [_rr(f"w{i}.{ZONE}", ["127.0.1.1"], SetIdentifier="us-east-1", Weight=70,
                        HealthCheckId=east),
                    _rr(f"w{i}.{ZONE}", ["127.0.2.1"], SetIdentifier="eu-west-1", Weight=30,
                        HealthCheckId=west)]
    for i in range(300):  # latency
        changes += [_rr(f"l{i}.{ZONE}", ["127.0.1.2"], SetIdentifier="us-east-1",
                        Region="us-east-1", HealthCheckId=east_tls),
                    _rr(f"l{i}.{ZONE}", ["127.0.2.2"], SetIdentifier="eu-west-1",
                        Region="eu-west-1", HealthCheckId=west_tls)]
    changes += [
        _rr(f"plain.{ZONE}", ["127.0.9.1"]),
        _rr(f"geo.{ZONE}", ["127.0.9.2"], SetIdentifier="eu", GeoLocation={"ContinentCode": "EU"}),
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": f"alias.{ZONE}", "Type": "A", "AliasTarget": {
                "HostedZoneId": zid, "DNSName": f"f1.{ZONE}", "EvaluateTargetHealth": False}}},
        {"Action": "CREATE", "ResourceRecordSet": {
            "Name": ZONE, "Type": "MX", "TTL": 300,
            "ResourceRecords": [{"Value": "10 mail.example.test."}]}}]
    for i in range(0, len(changes), 500):
        client.change_resource_record_sets(HostedZoneId=zid,
                                           ChangeBatch={"Changes": changes[i:i + 500]})
    return zid, [f"alias.{ZONE} A: alias", f"geo.{ZONE} A: geolocation",
                 f"plain.{ZONE} A: simple", "1 MX record set"]


def answers(client: Any, zid: str) -> set[tuple[Any, ...]]:
    """Every A record set with its routing and health check, as Route 53 holds them."""
    out = set()
    for page in client.get_paginator("list_resource_record_sets").paginate(HostedZoneId=zid):
        for s in page["ResourceRecordSets"]:
            if s["Type"] == "A":
                out.add((s["Name"], s.get("SetIdentifier"), s.get("TTL"), s.get("Weight"),
                         s.get("Region"), s.get("Failover"), s.get("HealthCheckId"),
                         tuple(sorted(r["Value"] for r in s.get("ResourceRecords", [])))))
    return out


def test_route53_zone_imported_writes_only_markers_then_nothing(
        moto_server: str, tmp_path: Path) -> None:  # noqa: F811
    client = boto3.client("route53", endpoint_url=moto_server)
    zid, noted = route53_zone(client)
    before = answers(client, zid)
    cfg = tmp_path / "failover.yaml"
    got = failover("import", "--from", "route53", "--zone", "example.test",
                   "--endpoint-url", moto_server, "--output", str(cfg))
    assert got.returncode == 0, got.stderr
    head = "".join(line for line in cfg.read_text().splitlines(keepends=True)
                   if line.startswith("#"))
    for note in noted:  # never dropped silently: in the file's header and on stderr
        assert note in head and note in got.stderr, note
    data = parse_config(cfg.read_text())
    assert len(data.records) == 1000
    assert {n: (c.type, c.port, c.resource_path, c.request_interval, c.failure_threshold,
                c.search_string) for n, c in data.checks.items()} == {
        "http-80": ("HTTP", 80, "/health", 10, 3, None),
        "https-str-match-443": ("HTTPS_STR_MATCH", 443, "/", 30, 2, "ok")}
    by_name = {r.name: r for r in data.records}
    assert by_name[f"f1.{ZONE}"].order == ["us-east-1", "eu-west-1"]
    # an address served with no region elsewhere: the region is its SetIdentifier, and
    # names on addresses of their own get pools
    assert by_name[f"f0.{ZONE}"].order == ["primary", "eu-west-1"]
    assert sum(1 for i in range(0, 400, 10) if by_name[f"f{i}.{ZONE}"].pool) == 39
    assert by_name[f"w1.{ZONE}"].weights == {"us-east-1": 70, "eu-west-1": 30}
    assert set(by_name[f"l1.{ZONE}"].regions or ()) == {"us-east-1", "eu-west-1"}

    refused = failover("import", "--from", "route53", "--zone", zid,
                       "--endpoint-url", moto_server, "--output", str(cfg))
    assert refused.returncode == 2 and "--force" in refused.stderr

    adopt_then_nothing(cfg, 1000)
    assert answers(client, zid) == before  # the answers and their checks, untouched


# ---------------------------------------------------------------------------- named

def fill(named: LocalNamed) -> None:
    """1,000 names: 400 in east (50 of them on an address of their own), 300 in west,
    300 in both; a CNAME and a name outside both ranges."""
    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    rows = [(f"e{i}", [f"127.0.1.{100 + i // 10}" if i % 8 == 0 else "127.0.1.1",
                       "127.0.1.2"]) for i in range(400)]
    rows += [(f"w{i}", ["127.0.2.1"]) for i in range(300)]
    rows += [(f"b{i}", ["127.0.1.1", "127.0.2.1"]) for i in range(300)]
    for start in range(0, len(rows), 250):
        upd = dns.update.UpdateMessage(named.dynamic_zone, keyring=keyring,
                                       keyname=dns.name.from_text(named.tsig_name))
        for name, values in rows[start:start + 250]:
            for v in values:
                upd.add(name, 60, "A", v)
        if start == 0:
            upd.add("alias", 60, "CNAME", "e1")
            upd.add("elsewhere", 60, "A", "192.0.2.7")
        response = dns.query.tcp(upd, named.host, port=named.port, timeout=10)
        assert response.rcode() == 0


def axfr(named: LocalNamed) -> set[tuple[str, str, int, tuple[str, ...]]]:
    from failover.dns.bind import BindAdapter
    from tests.dns.conftest import bind_adapter

    adapter: BindAdapter = bind_adapter(named)
    return {(r.name, r.type, r.ttl, r.values) for r in adapter.listing() if r.type == "A"}


def test_rfc2136_zone_imported_writes_only_markers_then_nothing(
        named: LocalNamed, tmp_path: Path) -> None:
    fill(named)
    before = axfr(named)
    (tmp_path / "tsig.secret").write_text(named.tsig_secret)
    (tmp_path / "tsig.secret").chmod(0o600)
    cfg = tmp_path / "failover.yaml"
    base = ["import", "--from", "rfc2136", "--server", named.host, "--port", str(named.port),
            "--zone", named.dynamic_zone, "--tsig-name", named.tsig_name,
            "--tsig-secret-file", str(tmp_path / "tsig.secret"),
            "--region", "east=127.0.1.0/24", "--region", "west=127.0.2.0/24"]
    got = failover(*base, "--policy", "weighted", "--output", str(cfg))
    assert got.returncode == 0, got.stderr
    for note in ("alias.example.test. CNAME", "elsewhere.example.test. A: 192.0.2.7 in no",
                 "ns1.example.test. A: 127.0.0.1 in no"):
        assert note in got.stderr and note in cfg.read_text(), note
    data = parse_config(cfg.read_text())
    assert data.provider.tsig is not None and data.provider.tsig.secret_file == "tsig.secret"
    assert {r.name: r.weights for r in data.records}[f"b1.{ZONE}"] == {"east": 1, "west": 1}
    assert len(data.records) == 1000 and data.pools  # the 50 on addresses of their own

    picked = failover(*base, "--names", "w1?.example.test", "--output", str(cfg), "--force")
    assert picked.returncode == 0, picked.stderr
    assert len(parse_config(cfg.read_text()).records) == 10

    got = failover(*base, "--policy", "weighted", "--output", str(cfg), "--force")
    assert got.returncode == 0, got.stderr
    adopt_then_nothing(cfg, 1000)
    assert axfr(named) == before


# ----------------------------------------------------------------------- adopt, pure

def _ledger(adopt: bool) -> Ledger:
    cands = [Candidate(f"{n}.{ZONE}", "A", 60, "failover",
                       [Part("east", ("127.0.1.1",)), Part("west", ("127.0.2.1",))])
             for n in ("same", "other")]
    imported = assemble(cands, zone=ZONE, provider={"type": "rfc2136", "server": "127.0.0.1"},
                        regions={}, templates={}, check_names={}, probe={}, notes=[])
    imported.config["ownership"]["adopt"] = adopt
    import yaml

    cfg = parse_config(yaml.safe_dump(imported.config))
    ledger = Ledger(cfg)
    ledger.set_actual([RecordSet.make(f"same.{ZONE}", "A", 60, ["127.0.1.1"]),
                       RecordSet.make(f"other.{ZONE}", "A", 60, ["127.0.2.1"])])
    ledger.set_decisions([Decision(name=r.name, type="A", ttl=60, policy="failover",
                                   regions=("east",), values=("127.0.1.1",),
                                   shares={"east": 1.0}, basis="health", reason="t", at=0)
                          for r in cfg.records])
    return ledger


def test_adopt_marks_only_names_that_already_answer_as_configured() -> None:
    planned = _ledger(adopt=True).plan()
    assert planned.adopted == [f"same.{ZONE}"]
    assert [(c.action, c.record.name) for c in planned.changes.changes] == [
        ("create", f"_failover.same.{ZONE}")]
    assert "127.0.2.1 -> " in planned.blocked[f"other.{ZONE}"].replace("('", "").replace(
        "',)", "")
    without = _ledger(adopt=False).plan()
    assert without.changes.changes == () and set(without.blocked) == {
        f"same.{ZONE}", f"other.{ZONE}"}


def test_rfc2136_names_that_fit_no_region_or_answer_from_two_are_listed() -> None:
    import ipaddress

    from failover.importing import from_rfc2136

    listing = [RecordSet.make(f"www.{ZONE}", "A", 60, ["10.1.0.1", "10.2.0.1"]),
               RecordSet.make(f"api.{ZONE}", "A", 60, ["10.1.0.9"]),
               RecordSet.make(f"x.{ZONE}", "CNAME", 60, [f"www.{ZONE}"]),
               RecordSet.make(f"ns.{ZONE}", "A", 60, ["192.0.2.1"])]
    ranges = [("east", ipaddress.ip_network("10.1.0.0/16")),
              ("west", ipaddress.ip_network("10.2.0.0/16"))]
    got = from_rfc2136(listing, zone=ZONE, provider={"type": "rfc2136", "server": "127.0.0.1"},
                       ranges=ranges)
    assert [(r["name"], r.get("order")) for r in got.config["records"]] == [
        (f"api.{ZONE}", ["east"]), (f"www.{ZONE}", ["east", "west"])]
    assert [n.split(":")[0] for n in got.notes[:3]] == [
        f"ns.{ZONE} A", f"www.{ZONE} A", f"x.{ZONE} CNAME"]
    assert "left alone by adopt" in got.notes[1]
    weighted = from_rfc2136(listing, zone=ZONE, provider={"type": "rfc2136", "server": "127.0.0.1"},
                            ranges=ranges, policy="weighted", names="www.*")
    assert [r.get("weights") for r in weighted.config["records"]] == [{"east": 1, "west": 1}]
    assert not any("left alone" in n for n in weighted.notes)
