"""DNS write benchmark against a private named: time from apply() to the answer served.

For RFC 2136 (BIND adapter) and for a zone file + rndc reload (zonefile adapter): p50 and
p99 over N changes of one record, each confirmed by a query; then one update of 500
records. Baselines in the same run: a bare dnspython UPDATE plus one query (no
prerequisites, no confirmation loop), and a bare `rndc reload` waited on by serial.

Usage: python bench/dns_writes.py [--changes N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dns.message  # noqa: E402
import dns.query  # noqa: E402
import dns.tsigkeyring  # noqa: E402
import dns.update  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from failover import plan  # noqa: E402
from failover.config import BindProvider, TsigKey, ZonefileProvider  # noqa: E402
from failover.dns.bind import BindAdapter  # noqa: E402
from failover.dns.served import soa_serial  # noqa: E402
from failover.dns.zonefile import ZonefileAdapter  # noqa: E402
from failover.localdns import LocalNamed  # noqa: E402
from failover.records import RecordSet  # noqa: E402


def quantiles(samples: list[float]) -> str:
    s = sorted(samples)
    p99 = s[min(len(s) - 1, int(len(s) * 0.99))]
    return f"p50 {statistics.median(s) * 1000:7.2f} ms  p99 {p99 * 1000:7.2f} ms"


def flips(adapter, name: str, n: int) -> list[float]:
    keys = {(name, "A")}
    actual = adapter.read(keys)
    out = []
    for i in range(n):
        desired = [RecordSet.make(name, "A", 30, [f"127.0.{i % 2 + 1}.1"])]
        changes = plan.diff(desired, actual, keys)
        t0 = time.perf_counter()
        adapter.apply(changes, actual)  # returns once the new answer is served
        out.append(time.perf_counter() - t0)
        actual = plan.apply_to(actual, changes)
    return out


def bare_updates(named: LocalNamed, n: int) -> list[float]:
    keyring = dns.tsigkeyring.from_text({named.tsig_name: named.tsig_secret})
    out = []
    for i in range(n):
        upd = dns.update.UpdateMessage(named.dynamic_zone, keyring=keyring)
        upd.replace("bare.example.test.", 30, "A", f"127.0.{i % 2 + 1}.1")
        t0 = time.perf_counter()
        dns.query.udp(upd, "127.0.0.1", port=named.port, timeout=2)
        dns.query.udp(dns.message.make_query("bare.example.test.", "A"), "127.0.0.1",
                      port=named.port, timeout=2)
        out.append(time.perf_counter() - t0)
    return out


def bare_reloads(named: LocalNamed, n: int) -> list[float]:
    path = named.file_zone_path
    out = []
    for _ in range(n):
        serial = soa_serial("127.0.0.1", named.port, named.file_zone)
        assert serial is not None
        text = path.read_text()
        path.write_text(text.replace(f"{serial} ; serial", f"{serial + 1} ; serial", 1))
        t0 = time.perf_counter()
        named.rndc("reload", named.file_zone.rstrip("."))
        while soa_serial("127.0.0.1", named.port, named.file_zone) != serial + 1:
            time.sleep(0.001)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--changes", type=int, default=200)
    a = parser.parse_args()
    n = a.changes
    with tempfile.TemporaryDirectory() as tmp:
        named = LocalNamed.start(Path(tmp) / "named")
        try:
            bind = BindAdapter(named.dynamic_zone, BindProvider(
                type="bind", server="127.0.0.1", port=named.port,
                tsig=TsigKey(name=named.tsig_name, secret_env="UNUSED")),
                SecretStr(named.tsig_secret))
            zprov = ZonefileProvider(type="zonefile", path=str(named.file_zone_path),
                                     rndc=subprocess.list2cmdline(named.rndc_command),
                                     port=named.port)
            zonefile = ZonefileAdapter(named.file_zone, zprov, named.file_zone_path)
            print(f"named {named.port} on loopback; {n} changes of one A record each, "
                  "timed from apply() until the new answer is served")
            rows = [
                ("RFC 2136 adapter (prereqs + TSIG + confirm)",
                 flips(bind, "api.example.test.", n)),
                ("baseline: bare UPDATE + one query", bare_updates(named, n)),
                ("zone file adapter (checkzone + reload)", flips(zonefile, "api.files.test.", n)),
                ("baseline: bare rndc reload, serial served",
                 bare_reloads(named, max(20, n // 4))),
            ]
            for label, samples in rows:
                print(f"  {label:<44} {quantiles(samples)}")
            keys = {(f"n{i}.example.test.", "A") for i in range(500)}
            desired = [RecordSet.make(k[0], "A", 60, [f"127.1.{i // 250}.{i % 250 + 1}"])
                       for i, k in enumerate(sorted(keys))]
            actual = bind.read(keys)
            t0 = time.perf_counter()
            report = bind.apply(plan.diff(desired, actual, keys), actual)
            total = time.perf_counter() - t0
            print(f"  500 records in one RFC 2136 update: {report.messages} message(s), "
                  f"acknowledged {report.applied_s * 1000:.1f} ms, all 500 confirmed served "
                  f"{total * 1000:.1f} ms")
        finally:
            named.stop()


if __name__ == "__main__":
    main()
