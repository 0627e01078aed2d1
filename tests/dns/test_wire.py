"""UPDATE messages and answers in wire form, checked against dnspython's own reading."""

from __future__ import annotations

import dns.message
import dns.name
import dns.rrset
import dns.tsig
import dns.update
from hypothesis import given
from hypothesis import strategies as st

from failover.dns.wire import Signer, pack_updates, parse_answer
from failover.plan import Change
from failover.records import RecordSet

ZONE = "example.test."
KEY = dns.tsig.Key("failover-key.", "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA==",
                   "hmac-sha256")
SIGNER = Signer(dns.name.from_text("failover-key."), KEY)


def a(name: str, *values: str, ttl: int = 30) -> RecordSet:
    return RecordSet.make(name, "A", ttl, values)


def sections(msg: dns.message.Message) -> list[str]:
    """Prerequisites and updates as sorted text, to compare two messages."""
    assert isinstance(msg, dns.update.UpdateMessage)
    return [sorted(rrset.to_text() for rrset in section)
            for section in (msg.prerequisite, msg.update)]  # type: ignore[misc]


def test_an_update_reads_back_as_dnspython_would_write_it_and_its_tsig_verifies() -> None:
    changes = [Change("create", a("new.example.test.", "127.0.0.1")),
               Change("upsert", a("api.example.test.", "127.0.2.1"),
                      a("api.example.test.", "127.0.1.1", "127.0.1.2")),
               Change("delete", RecordSet.make("_failover.old.example.test.", "TXT", 30,
                                               ['"heritage=failover,owner=x"']))]
    [msg], too_large = pack_updates(ZONE, [[c] for c in changes], SIGNER)
    assert not too_large
    wire, msg_id, mac = msg.wire(ZONE, SIGNER)
    ours = dns.message.from_wire(wire, keyring={SIGNER.keyname: KEY})  # checks the TSIG
    assert ours.id == msg_id and mac
    theirs = dns.update.UpdateMessage(ZONE)
    theirs.absent("new.example.test.", "A")
    theirs.add("new.example.test.", 30, "A", "127.0.0.1")
    theirs.present("api.example.test.", dns.rdataset.from_text("IN", "A", 0, "127.0.1.1",
                                                               "127.0.1.2"))
    theirs.replace("api.example.test.", 30, "A", "127.0.2.1")
    theirs.present("_failover.old.example.test.",
                   dns.rdataset.from_text("IN", "TXT", 0, '"heritage=failover,owner=x"'))
    theirs.delete("_failover.old.example.test.", "TXT")
    assert sections(ours) == sections(dns.message.from_wire(theirs.to_wire()))


@given(st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=60))
def test_messages_stay_under_the_limit_and_never_split_a_name(sizes: list[int]) -> None:
    groups = []
    for i, n in enumerate(sizes):
        values = [f"10.{j // 65536 % 256}.{j // 256 % 256}.{j % 256}" for j in range(n)]
        rec = a(f"n{i}.example.test.", *values)
        marker = RecordSet.make(f"_failover.n{i}.example.test.", "TXT", 30, ['"owner"'])
        groups.append([Change("create", rec), Change("create", marker)])
    limit = 4000
    messages, too_large = pack_updates(ZONE, groups, SIGNER, limit=limit)
    written = [c for m in messages for c in m.changes]
    for m in messages:
        assert len(m.wire(ZONE, SIGNER)[0]) <= limit
    names = [c.record.name for c in written if not c.record.name.startswith("_")]
    assert len(names) == len(set(names))
    for m in messages:  # a name and its marker share a message
        inside = {c.record.name for c in m.changes}
        assert all(f"_failover.{n}" in inside for n in inside if not n.startswith("_"))
    assert len(names) + len(too_large) == len(groups)


TEXTS = st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=255), max_size=40)


@given(st.sampled_from(["A", "AAAA", "CNAME", "TXT"]), st.lists(TEXTS, min_size=1, max_size=3),
       st.integers(min_value=0, max_value=86400))
def test_answers_read_like_dnspython_reads_them(rtype: str, texts: list[str], ttl: int) -> None:
    name = "api.example.test."
    if rtype == "A":
        values = [f"127.0.{len(t)}.{i + 1}" for i, t in enumerate(texts)]
    elif rtype == "AAAA":
        values = [f"fd00::{len(t):x}:{i + 1}" for i, t in enumerate(texts)]
    elif rtype == "CNAME":
        values = ["target.example.org."]
    else:
        values = [" ".join('"' + "".join(f"\\{ord(c):03d}" for c in t) + '"' for t in texts)]
    query = dns.message.make_query(name, rtype)
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(name, ttl, "IN", rtype, *values))
    wire = response.to_wire()
    rcode, truncated, rrs = parse_answer(wire, rtype)
    parsed = dns.message.from_wire(wire)
    assert rcode == 0 and not truncated
    assert sorted(v for _, _, v in rrs) == sorted(rd.to_text() for rrset in parsed.answer
                                                  for rd in rrset)
    assert {(o, t) for o, t, _ in rrs} == {(name, ttl)}
