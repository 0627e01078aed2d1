"""Which live views count (failover/cluster/voters.py): the config's vantages, read whole;
the rest left out and named, once, however many there are. No network."""

from __future__ import annotations

import json
import logging

from failover.cluster.etcd import KV
from failover.cluster.voters import Voters

ALLOWED = ["us-east-1", "eu-west-1"]


def kv(vantage: str, value: object, revision: int = 1) -> KV:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    return KV(f"/f/live/vantages/{vantage}", raw, revision, revision, 1, 7)


def good(healthy: int = 1) -> dict[str, object]:
    return {"ready": True, "host": "h", "pid": 2, "at": 1.0,
            "checks": {"us-east-1/127.0.1.1|web": [healthy, None, "ok", 1.5]}}


def test_only_listed_views_that_read_whole_count() -> None:
    voters = Voters("/f")
    notes = voters.sort({"us-east-1": kv("us-east-1", good()),
                         "eu-west-1": kv("eu-west-1", {"ready": True, "checks": {"x|web": [1]}}),
                         "intruder": kv("intruder", good(0))}, ALLOWED)
    assert list(voters.counted) == ["us-east-1"]
    assert list(voters.unknown) == ["intruder"] and list(voters.malformed) == ["eu-west-1"]
    assert [(n.level, n.vantage) for n in notes] == [(logging.ERROR, "intruder"),
                                                     (logging.WARNING, "eu-west-1")]
    problem = voters.problem() or ""
    assert "1 vantage(s) not in controller.cluster.vantages" in problem and "'intruder'" in problem
    assert "1 view(s) cannot be read" in problem and "'eu-west-1'" in problem
    # the same views again: nothing new to say
    assert voters.sort({"us-east-1": kv("us-east-1", good()),
                        "eu-west-1": kv("eu-west-1", b"[", 2),
                        "intruder": kv("intruder", good(0), 2)}, ALLOWED) == []
    # fixed and gone: said once each, and every live view counts again
    notes = voters.sort({"us-east-1": kv("us-east-1", good()),
                         "eu-west-1": kv("eu-west-1", good(), 3)}, ALLOWED)
    assert [(n.level, n.refused) for n in notes] == [(logging.INFO, False)] * 2
    assert "is counted again" in notes[0].message and "no longer publishes" in notes[1].message
    assert sorted(voters.counted) == sorted(ALLOWED) and voters.problem() is None


def test_keys_written_by_the_thousand_are_summed_up_not_named_one_by_one() -> None:
    voters = Voters("/f")
    live = {"us-east-1": kv("us-east-1", good())}
    said = []
    for i in range(1000):  # one at a time, as a watch delivers them
        live[f"x{i:04d}"] = kv(f"x{i:04d}", good(0))
        said += voters.sort(live, ALLOWED)
    assert len(voters.unknown) == 1000 and list(voters.counted) == ["us-east-1"]
    named = [n for n in said if n.vantage]
    assert [n.vantage for n in named] == ["x0000", "x0001", "x0002", "x0003", "x0004"]
    sums = [n.message.split()[0] for n in said if not n.vantage]
    assert sums == ["10", "20", "40", "80", "160", "320", "640"]
    assert "and 995 more" in (voters.problem() or "")
    gone = voters.sort({"us-east-1": kv("us-east-1", good())}, ALLOWED)
    assert len(gone) == 6 and "and 995 more" in gone[-1].message


def test_a_vantage_name_cannot_write_lines_of_its_own() -> None:
    voters = Voters("/f")
    [note] = voters.sort({"x\nERROR forged": kv("x\nERROR forged", good())}, ALLOWED)
    assert "\n" not in note.message and "\n" not in (voters.problem() or "")
