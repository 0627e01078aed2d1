"""Route 53 failover benchmark against moto_server on loopback: API calls and wall time.

For 10, 1,000 and 10,000 failover records (PRIMARY + SECONDARY each): the calls and time
our adapter needs to move every PRIMARY to the secondary region as the controller does
when a region fails (SECONDARY stays; read, batched changes
within Route 53's limits, read-back confirmation), under the client-side budget of
5 requests/s. Baseline in the same run: one UPSERT call per record, no budget (what a
naive script does; against real Route 53 it would be throttled at 5 requests/s).

Usage: python bench/route53.py [--sizes 10,1000,10000]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import boto3  # noqa: E402

from failover import plan  # noqa: E402
from failover.config import Route53Provider  # noqa: E402
from failover.dns.route53 import Route53Adapter  # noqa: E402
from failover.localdns import free_port  # noqa: E402
from failover.records import RecordSet  # noqa: E402


def start_moto() -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "moto_fixes.py"), "-H",
                             "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            boto3.client("route53", endpoint_url=url).list_hosted_zones()
            return proc, url
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def records(n: int, primary: str, secondary: str) -> list[RecordSet]:
    out = []
    for i in range(n):
        name = f"r{i}.example.test."
        out.append(RecordSet.make(name, "A", 60, [primary], set_identifier="primary",
                                  failover="PRIMARY"))
        out.append(RecordSet.make(name, "A", 60, [secondary], set_identifier="secondary",
                                  failover="SECONDARY"))
    return out


def run(url: str, n: int) -> None:
    client = boto3.client("route53", endpoint_url=url)
    zid = client.create_hosted_zone(Name="example.test.", CallerReference=f"b{n}{time.time()}")
    zone_id = zid["HostedZone"]["Id"].split("/")[-1]
    prov = Route53Provider(type="route53", hosted_zone_id=zone_id, endpoint_url=url)
    adapter = Route53Adapter("example.test.", prov)
    keys = {(f"r{i}.example.test.", "A") for i in range(n)}
    adapter.apply(plan.diff(records(n, "127.0.1.1", "127.0.2.1"), [], keys), [])
    calls0 = adapter.stats.calls
    t0 = time.perf_counter()
    actual = adapter.read(keys)
    # what the controller writes when us-east-1 fails: PRIMARY moves to eu-west-1, and
    # SECONDARY (already eu-west-1, the last tier) stays
    changes = plan.diff(records(n, "127.0.2.1", "127.0.2.1"), actual, keys)
    report = adapter.apply(changes, actual)
    wall = time.perf_counter() - t0
    calls = adapter.stats.calls - calls0
    # baseline: one UPSERT per record set, as a naive script would
    t1 = time.perf_counter()
    sample = min(n, 500)  # timed on 500 calls and scaled: moto is slow on big zones
    for rs in records(sample, "127.0.4.1", "127.0.5.1")[::2]:
        client.change_resource_record_sets(HostedZoneId=zone_id, ChangeBatch={"Changes": [{
            "Action": "UPSERT", "ResourceRecordSet": {
                "Name": rs.name, "Type": "A", "TTL": 60, "SetIdentifier": "primary",
                "Failover": "PRIMARY", "ResourceRecords": [{"Value": "127.0.4.1"}]}}]})
    naive = (time.perf_counter() - t1) * n / sample
    print(f"  {n:>5} records: {calls:4d} API calls ({report.messages} change batches, "
          f"{calls - report.messages} reads), {wall:6.2f} s incl. read-back | baseline: {n} "
          f"calls, {naive:6.2f} s unthrottled (>= {n / 5:.0f} s at 5 req/s); "
          f"{n / calls:.0f}x fewer calls")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10,1000,10000")
    a = parser.parse_args()
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(key, "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    proc, url = start_moto()
    try:
        print(f"moto_server at {url}; fail over N failover records (PRIMARY moves), budget 5 req/s")
        for n in (int(x) for x in a.sizes.split(",")):
            run(url, n)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)


if __name__ == "__main__":
    main()
