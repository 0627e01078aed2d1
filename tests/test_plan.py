"""The plan: a pure diff, its guards, and its renderings."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from failover import plan
from failover.records import RecordSet

A = RecordSet.make


def test_diff_creates_upserts_and_deletes_only_managed_records() -> None:
    actual = [A("api.example.test", "A", 30, ["127.0.1.1"]),
              A("old.example.test", "A", 30, ["127.0.9.9"]),
              A("foreign.example.test", "A", 30, ["127.0.8.8"]),
              A("api.example.test", "TXT", 30, ['"hello"'])]
    desired = [A("api.example.test", "A", 30, ["127.0.2.1"]),
               A("www.example.test", "A", 30, ["127.0.1.1"])]
    managed = {("api.example.test.", "A"), ("www.example.test.", "A"), ("old.example.test.", "A")}
    cs = plan.diff(desired, actual, managed, zone="example.test.")
    assert [(c.action, c.record.name) for c in cs.changes] == [
        ("delete", "old.example.test."), ("upsert", "api.example.test."),
        ("create", "www.example.test.")]
    assert cs.changes[1].before == actual[0]
    assert cs.existing == 2
    assert cs.summary() == "3 changes: 1 create, 1 upsert, 1 delete"


def test_equal_records_in_another_spelling_need_no_change() -> None:
    actual = [A("API.example.test.", "AAAA", 30, ["2001:0db8:0000::1"])]
    desired = [A("api.example.test", "AAAA", 30, ["2001:db8::1"])]
    assert not plan.diff(desired, actual, {("api.example.test.", "AAAA")})


def test_ttl_change_is_an_upsert() -> None:
    actual = [A("api.example.test", "A", 30, ["127.0.1.1"])]
    desired = [A("api.example.test", "A", 60, ["127.0.1.1"])]
    [c] = plan.diff(desired, actual, {("api.example.test.", "A")}).changes
    assert c.action == "upsert"


def test_desired_outside_managed_is_refused() -> None:
    with pytest.raises(ValueError, match="not managed"):
        plan.diff([A("x.example.test", "A", 1, ["127.0.0.1"])], [], set())


def test_renderings() -> None:
    actual = [A("api.example.test", "A", 30, ["127.0.1.1"])]
    desired = [A("api.example.test", "A", 30, ["127.0.2.1"]),
               A("www.example.test", "A", 30, ["127.0.1.1"], set_identifier="us", weight=70)]
    cs = plan.diff(desired, actual, {("api.example.test.", "A"), ("www.example.test.", "A")})
    table = plan.to_table(cs)
    assert "~ upsert" in table and "127.0.1.1 -> 127.0.2.1" in table
    assert "set=us weight=70" in table and table.endswith("2 changes: 1 create, 1 upsert, 0 delete")
    md = plan.to_markdown(cs)
    assert md.startswith("| action | name |") and "&rarr;" in md
    data = json.loads(json.dumps(plan.to_json(cs)))
    assert data["summary"] == {"create": 1, "upsert": 1, "delete": 0}
    assert data["changes"][0]["before"]["values"] == ["127.0.1.1"]
    assert plan.to_table(plan.diff([], [], set())) == "no changes"
    assert plan.to_markdown(plan.diff([], [], set())) == "_no changes_"


def test_renderings_in_full() -> None:
    """What `plan` prints, exactly: every column, the routing, a values change shown as
    before -> after (a TTL change alone shows the values once), the summary."""
    actual = [A("api.example.test", "A", 30, ["127.0.1.1"]),
              A("old.example.test", "AAAA", 300, ["::1"]),
              A("ttl.example.test", "A", 30, ["127.0.3.1"])]
    desired = [A("api.example.test", "A", 30, ["127.0.2.1", "127.0.2.2"]),
               A("ttl.example.test", "A", 60, ["127.0.3.1"]),
               A("www.example.test", "A", 30, ["127.0.1.1"], set_identifier="us", weight=70),
               A("www.example.test", "A", 30, ["127.0.4.1"], set_identifier="eu",
                 region="eu-west-1", failover="PRIMARY")]
    cs = plan.diff(desired, actual, {("api.example.test.", "A"), ("www.example.test.", "A"),
                                     ("old.example.test.", "AAAA"), ("ttl.example.test.", "A")},
                   zone="example.test.")
    assert plan.to_table(cs) == "\n".join([
        "          NAME               TYPE  TTL  VALUES                            ROUTING",
        "- delete  old.example.test.  AAAA  300  ::1",
        "~ upsert  api.example.test.  A     30   127.0.1.1 -> 127.0.2.1,127.0.2.2",
        "~ upsert  ttl.example.test.  A     60   127.0.3.1",
        "+ create  www.example.test.  A     30   127.0.4.1                         "
        "set=eu region=eu-west-1 failover=PRIMARY",
        "+ create  www.example.test.  A     30   127.0.1.1                         "
        "set=us weight=70",
        "5 changes: 2 create, 2 upsert, 1 delete"])
    assert plan.to_markdown(cs) == "\n".join([
        "| action | name | type | ttl | values | routing |",
        "|---|---|---|---|---|---|",
        "| delete | `old.example.test.` | AAAA | 300 | `::1` |  |",
        "| upsert | `api.example.test.` | A | 30 | `127.0.1.1` &rarr; `127.0.2.1`<br>`127.0.2.2` |  |",
        "| upsert | `ttl.example.test.` | A | 60 | `127.0.3.1` |  |",
        "| create | `www.example.test.` | A | 30 | `127.0.4.1` | "
        "set=eu region=eu-west-1 failover=PRIMARY |",
        "| create | `www.example.test.` | A | 30 | `127.0.1.1` | set=us weight=70 |",
        "",
        "**5 changes: 2 create, 2 upsert, 1 delete**"])
    api = {"name": "api.example.test.", "type": "A", "ttl": 30}
    ttl = {"name": "ttl.example.test.", "type": "A", "values": ["127.0.3.1"]}
    www = {"name": "www.example.test.", "type": "A", "ttl": 30}
    assert plan.to_json(cs) == {
        "zone": "example.test.", "existing": 3,
        "summary": {"create": 2, "upsert": 2, "delete": 1},
        "changes": [
            {"action": "delete", "name": "old.example.test.", "type": "AAAA", "ttl": 300,
             "values": ["::1"]},
            {"action": "upsert", **api, "values": ["127.0.2.1", "127.0.2.2"],
             "before": {**api, "values": ["127.0.1.1"]}},
            {"action": "upsert", **ttl, "ttl": 60, "before": {**ttl, "ttl": 30}},
            {"action": "create", **www, "values": ["127.0.4.1"], "set_identifier": "eu",
             "region": "eu-west-1", "failover": "PRIMARY"},
            {"action": "create", **www, "values": ["127.0.1.1"], "set_identifier": "us",
             "weight": 70}]}
    one = plan.diff([A("a.example.test", "A", 30, ["127.0.0.1"])], [],
                    {("a.example.test.", "A")})
    assert one.summary() == "1 change: 1 create, 0 upsert, 0 delete"


# ----------------------------------------------------------------------------- properties

NAMES = ["a.example.test.", "b.example.test.", "c.example.test."]
record_sets = st.builds(
    lambda name, rtype, sid, ttl, host: A(name, rtype, ttl,
                                          [f"127.0.0.{host}"] if rtype == "A" else [f"::{host}"],
                                          set_identifier=sid),
    st.sampled_from(NAMES), st.sampled_from(["A", "AAAA"]), st.sampled_from([None, "x", "y"]),
    st.sampled_from([30, 60]), st.integers(1, 3))


def unique(records: list[RecordSet]) -> list[RecordSet]:
    return list({r.key: r for r in records}.values())


@given(st.lists(record_sets, max_size=12), st.lists(record_sets, max_size=12),
       st.sets(st.tuples(st.sampled_from(NAMES), st.sampled_from(["A", "AAAA"]))))
def test_applying_a_plan_yields_the_desired_state(desired: list[RecordSet],
                                                  actual: list[RecordSet],
                                                  managed: set[tuple[str, str]]) -> None:
    desired = [r for r in unique(desired) if (r.name, r.type) in managed]
    actual = unique(actual)
    cs = plan.diff(desired, actual, managed)
    after = plan.apply_to(actual, cs)
    assert {r for r in after if (r.name, r.type) in managed} == set(desired)
    # nothing outside the managed records is touched
    assert {r for r in after if (r.name, r.type) not in managed} == \
        {r for r in actual if (r.name, r.type) not in managed}
    # a second plan after applying is empty
    assert not plan.diff(desired, after, managed)
    # deletes come first: a batch never holds two record sets for one key
    actions = [c.action for c in cs.changes]
    assert actions == sorted(actions, key=["delete", "upsert", "create"].index)


def test_a_part_of_a_plan_keeps_its_zone_base_and_markers() -> None:
    from failover.plan import Change, ChangeSet
    from failover.records import RecordSet

    api = RecordSet.make("api.example.test.", "A", 30, ["127.0.1.1"])
    mark = RecordSet.make("_failover.api.example.test.", "TXT", 30, ['"x"'])
    whole = ChangeSet(zone="example.test.", changes=(Change("create", api),
                                                      Change("create", mark)),
                      existing=7, managed=frozenset({("api.example.test.", "A")}),
                      marker_prefix="_failover")
    part = whole.only([whole.changes[1]])
    assert part == ChangeSet(zone="example.test.", changes=(Change("create", mark),),
                             existing=7, managed=frozenset({("api.example.test.", "A")}),
                             marker_prefix="_failover")
    assert part.owner(mark.name) == "api.example.test."


def test_an_upsert_from_several_values_shows_them_all_and_a_delete_no_before() -> None:
    from failover.plan import Change, ChangeSet, to_markdown, to_table
    from failover.records import RecordSet

    before = RecordSet.make("api.example.test.", "A", 30, ["127.0.1.1", "127.0.1.2"])
    after = RecordSet.make("api.example.test.", "A", 30, ["127.0.2.1"])
    changes = ChangeSet(zone="example.test.", changes=(Change("upsert", after, before),))
    assert "127.0.1.1,127.0.1.2 -> 127.0.2.1" in to_table(changes)
    assert "`127.0.1.1`<br>`127.0.1.2` &rarr; `127.0.2.1`" in to_markdown(changes)
    gone = Change("delete", before, after)  # what was there is the record itself
    assert "before" not in gone.to_dict() and "before" in changes.changes[0].to_dict()
    both = ChangeSet(zone="example.test.", changes=(Change("create", after), gone),
                     marker_prefix="_failover")
    assert both.groups() == [[Change("create", after), gone]]
    www = Change("create", RecordSet.make("www.example.test.", "A", 30, ["127.0.2.1"]))
    mark = Change("create", RecordSet.make("_failover.api.example.test.", "TXT", 30, ['"x"']))
    three = ChangeSet(zone="example.test.", changes=(Change("create", after), www, mark),
                      marker_prefix="_failover")
    assert three.groups() == [[Change("create", after), mark], [www]]


def test_with_no_minimum_the_share_guard_holds_from_one_existing_record_set() -> None:
    from failover.plan import Change, ChangeSet, share_violations
    from failover.records import RecordSet

    gone = Change("delete", RecordSet.make("api.example.test.", "A", 30, ["127.0.1.1"]))
    one = ChangeSet(zone="example.test.", changes=(gone,), existing=1)
    assert share_violations(one, max_delete_share=0.5, min_existing=0) == [
        "1 of 1 managed record sets would be deleted (more than max_delete_share 50%)"]
    none = ChangeSet(zone="example.test.", changes=(gone,), existing=0)
    assert share_violations(none, max_delete_share=0.5, min_existing=0) == []
