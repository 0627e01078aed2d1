from __future__ import annotations

import pytest

from failover.records import RecordSet


def test_record_sets_are_canonical() -> None:
    rs = RecordSet.make("WWW.Example.Test", "CNAME", 60, ["LB.example.NET"])
    assert rs.name == "www.example.test." and rs.values == ("lb.example.net.",)
    rs = RecordSet.make("x.example.test.", "A", 60, ["127.0.0.2", "127.0.0.1", "127.0.0.1"])
    assert rs.values == ("127.0.0.1", "127.0.0.2")
    assert rs.to_dict() == {"name": "x.example.test.", "type": "A", "ttl": 60,
                            "values": ["127.0.0.1", "127.0.0.2"]}


def test_values_must_fit_the_type() -> None:
    with pytest.raises(ValueError):
        RecordSet.make("x.example.test.", "A", 60, ["::1"])
    with pytest.raises(ValueError):
        RecordSet.make("x.example.test.", "AAAA", 60, ["127.0.0.1"])
