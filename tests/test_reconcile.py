"""The ledger: per-name planning, ownership markers and the safety guards, without I/O."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from failover.dns.ownership import Registry, marker_value, may_write
from failover.plan import Change, ChangeSet
from failover.reconcile import Ledger, plan_step
from failover.records import RecordSet
from policies import Overrides
from policies.model import Decision
from tests.builders import config, snapshot

R = RecordSet.make
API = "api.example.test."
WANT = [R(API, "A", 30, ["127.0.1.1"])]


def marker(owner: str, name: str = API) -> RecordSet:
    return R(f"_failover.{name}", "TXT", 30, [marker_value(owner)])


def ledger(records: list[dict[str, Any]], desired: list[RecordSet], actual: list[RecordSet],
           markers: bool = True, **extra: Any) -> Ledger:
    """A ledger for `records` (weighted on one region) holding these desired and actual
    record sets; `extra` are config sections (ownership, plan)."""
    specs = [{"policy": "weighted", "weights": {"r1": 1}, **r} for r in records]
    out = Ledger(config({"r1": ["127.0.0.1", "::1"]}, specs, **extra), ownership=markers)
    out.set_actual(actual)
    for rs in desired:
        out.desired[(rs.name, rs.type)] = (*out.desired.get((rs.name, rs.type), ()), rs)
    return out


def api(**extra: Any) -> list[dict[str, Any]]:
    return [{"name": API, "type": "A", **extra}]


def test_a_free_name_is_written_with_its_marker() -> None:
    p = ledger(api(), WANT, [], ownership={"owner_id": "east"}).plan()
    assert {(c.action, c.record) for c in p.changes.changes} == {
        ("create", WANT[0]), ("create", marker("east"))} and not p.blocked
    assert len(p.changes.groups()) == 1  # the name and its marker travel together


def test_our_name_is_written() -> None:
    actual = [R(API, "A", 30, ["127.0.2.1"]), marker("east")]
    p = ledger(api(), WANT, actual, ownership={"owner_id": "east"}).plan()
    assert [c.action for c in p.changes.changes] == ["upsert"] and not p.blocked


def test_another_owner_blocks_unless_taken_over() -> None:
    actual = [R(API, "A", 30, ["127.0.2.1"]), marker("west")]
    p = ledger(api(), WANT, actual, ownership={"owner_id": "east"}).plan()
    assert "owned by controller 'west'" in p.blocked[API]
    assert not p.changes  # nothing touched
    p = ledger(api(), WANT, actual, ownership={"owner_id": "east", "take_over": True}).plan()
    assert {(c.action, c.record.type) for c in p.changes.changes} == {("upsert", "A"),
                                                                      ("upsert", "TXT")}


def test_unmarked_records_are_left_to_whoever_made_them() -> None:
    p = ledger(api(), WANT, [R(API, "A", 30, ["127.0.2.1"])]).plan()
    assert "no failover marker" in p.blocked[API]


def test_guard_refuses_to_leave_a_name_without_answer() -> None:
    actual = [R(API, "A", 30, ["127.0.1.1"])]
    p = ledger(api(), [], actual, markers=False).plan()
    assert p.violations == [f"{API} would be left with no answer"]
    # a record configured to fail closed may be left empty
    assert not ledger(api(fail_mode="closed"), [], actual, markers=False).plan().violations


def test_replacing_a_type_at_a_name_keeps_an_answer() -> None:
    records = [*api(), {"name": API, "type": "AAAA"}]
    p = ledger(records, [R(API, "AAAA", 30, ["::1"])], [R(API, "A", 30, ["127.0.1.1"])],
               markers=False).plan()
    assert {c.action for c in p.changes.changes} == {"create", "delete"} and not p.violations


def test_guard_refuses_mass_deletes_above_the_share() -> None:
    names = [f"r{i}.example.test." for i in range(20)]
    actual = [R(n, "A", 30, ["127.0.0.1"]) for n in names]
    records = [{"name": n, "type": "A", "fail_mode": "closed"} for n in names]

    def planned(min_existing: int) -> list[str]:
        return ledger(records, actual[:10], actual, markers=False,
                      plan={"max_delete_share": 0.3, "min_existing": min_existing}
                      ).plan().violations

    assert planned(10) == ["10 of 20 managed record sets would be deleted "
                           "(more than max_delete_share 30%)"]
    assert planned(50) == []  # under the minimum size the share guard does not apply


def test_the_share_guard_holds_from_exactly_min_existing_and_allows_exactly_the_share() -> None:
    names = [f"r{i}.example.test." for i in range(20)]
    actual = [R(n, "A", 30, ["127.0.0.1"]) for n in names]
    records = [{"name": n, "type": "A", "fail_mode": "closed"} for n in names]

    def planned(kept: int, min_existing: int) -> list[str]:
        return ledger(records, actual[:kept], actual, markers=False,
                      plan={"max_delete_share": 0.3, "min_existing": min_existing}
                      ).plan().violations

    # 20 exist and the guard starts at 20: it applies
    assert planned(10, 20) == ["10 of 20 managed record sets would be deleted "
                               "(more than max_delete_share 30%)"]
    assert planned(10, 21) == []  # one below the minimum size: it does not
    # 6 of 20 is exactly 30%: allowed; 7 is more
    assert planned(14, 20) == []
    assert planned(13, 20) == ["7 of 20 managed record sets would be deleted "
                               "(more than max_delete_share 30%)"]


def test_only_the_names_asked_for_are_planned() -> None:
    names = [f"r{i}.example.test." for i in range(3)]
    records = [{"name": n, "type": "A"} for n in names]
    desired = [R(n, "A", 30, ["127.0.0.1"]) for n in names]
    led = ledger(records, desired, [], markers=False)
    assert {c.record.name for c in led.plan([names[1]]).changes.changes} == {names[1]}
    led.applied(led.plan([names[1]]).changes)
    assert led.drifted() == [names[0], names[2]]


# ------------------------------------------------------------------ names that left the config

OLD = "old.example.test."


def ours(name: str, *values: str, owner: str = "east") -> list[RecordSet]:
    """A name as this controller left it: its answer and its marker."""
    return [R(name, "A", 30, list(values or ["127.0.9.9"])), marker(owner, name)]


def test_a_name_marked_by_us_that_left_the_config_is_deleted_with_its_marker() -> None:
    led = ledger(api(), WANT, [*ours(API, "127.0.1.1"), *ours(OLD)],
                 ownership={"owner_id": "east"})
    p = led.plan()
    assert {(c.action, c.record) for c in p.changes.changes} == {
        ("delete", ours(OLD)[0]), ("delete", marker("east", OLD))}
    assert p.pruned == [OLD] and not p.kept and not p.violations
    assert len(p.changes.groups()) == 1  # the name and its marker go together
    assert led.drifted() == [OLD]  # the controller's backlog after a full read
    led.applied(p.changes)
    assert not led.plan().changes and led.orphans() == [] and led.drifted() == []


def test_prune_false_keeps_such_names_and_lists_them() -> None:
    led = ledger(api(), WANT, [*ours(API, "127.0.1.1"), *ours(OLD)],
                 ownership={"owner_id": "east", "prune": False})
    p = led.plan()
    assert not p.changes and p.kept == [OLD] and not p.pruned
    assert led.drifted() == []


def test_names_marked_by_others_or_unmarked_are_never_pruned() -> None:
    shared = R(f"_failover.{OLD}", "TXT", 30, [marker_value("east"), marker_value("west")])
    for actual in ([*ours(OLD, owner="west")],  # another owner's
                   [R(OLD, "A", 30, ["127.0.9.9"])],  # nobody's
                   [R(OLD, "A", 30, ["127.0.9.9"]), shared]):  # not plainly ours
        led = ledger(api(), WANT, [*ours(API, "127.0.1.1"), *actual],
                     ownership={"owner_id": "east", "take_over": True})
        p = led.plan()
        assert not p.changes and not p.pruned and led.orphans() == [], actual


def test_only_the_answer_and_the_marker_of_a_pruned_name_are_deleted() -> None:
    # a TXT or MX of its own at the name is not ours to delete (reads return only
    # A/AAAA/CNAME and markers, but the ledger does not rely on it)
    actual = [*ours(API, "127.0.1.1"), *ours(OLD), R(OLD, "TXT", 30, ['"v=spf1 -all"'])]
    p = ledger(api(), WANT, actual, ownership={"owner_id": "east"}).plan()
    assert {c.record.type for c in p.changes.changes} == {"A", "TXT"}
    assert all(c.record.name != OLD or c.record.type == "A" for c in p.changes.changes)


def test_pruning_is_guarded_as_a_whole_even_a_chunk_at_a_time() -> None:
    kept = [f"k{i}.example.test." for i in range(4)]
    gone = [f"g{i}.example.test." for i in range(8)]
    actual = [rs for n in [*kept, *gone] for rs in ours(n)]
    desired = [R(n, "A", 30, ["127.0.9.9"]) for n in kept]
    led = ledger([{"name": n, "type": "A"} for n in kept], desired, actual,
                 ownership={"owner_id": "east"},
                 plan={"max_delete_share": 0.5, "min_existing": 10})
    assert led.drifted() == gone
    # one name's deletes are 2 of 24, but the prune as a whole deletes 16 of 24
    for part in ([gone[0]], gone[:4], None):
        p = led.plan(part)
        assert p.violations == [
            "16 of 24 managed record sets would be deleted (more than max_delete_share 50%), "
            "8 name(s) among them no longer in the config: nothing is pruned (check the "
            "config; ownership.prune: false keeps such names, --force deletes them)"], part
    # a prune within the share goes through
    small = ledger([{"name": n, "type": "A"} for n in [*kept, *gone[2:]]],
                   desired + [R(n, "A", 30, ["127.0.9.9"]) for n in gone[2:]], actual,
                   ownership={"owner_id": "east"},
                   plan={"max_delete_share": 0.5, "min_existing": 10})
    assert small.plan([gone[0]]).violations == [] and small.drifted() == gone[:2]


def test_what_was_written_is_folded_into_what_dns_holds() -> None:
    led = ledger(api(), WANT, [*ours(OLD), *ours(API, "127.0.9.9")],
                 ownership={"owner_id": "east"})
    assert led.existing == 4
    # in zone order, whatever order the read gave them in
    assert led.actual_list() == [marker("east", API), marker("east", OLD),
                                 *ours(API, "127.0.9.9")[:1], *ours(OLD)[:1]]
    assert set(led.actual_of([API])) == set(ours(API, "127.0.9.9"))
    plan = led.plan()
    [old_answer] = [c for c in plan.changes.changes if c.record == ours(OLD)[0]]
    [old_marker] = [c for c in plan.changes.changes if c.record == marker("east", OLD)]
    # the orphan's marker gone first: its answer is still there, and still an orphan's
    led.applied(plan.changes.only([old_marker]))
    assert led.existing == 3 and led.actual_of([OLD]) == ours(OLD)[:1]
    assert led.orphans() == [OLD]
    # then its answer: nothing of it is left, and it is no longer an orphan
    led.applied(plan.changes.only([old_answer]))
    assert led.existing == 2 and led.actual_of([OLD]) == [] and led.orphans() == []
    # a delete of what DNS no longer holds changes nothing
    led.applied(plan.changes.only([old_answer]))
    assert led.existing == 2
    # the managed name's upsert replaces its answer
    led.applied(plan.changes.only(c for c in plan.changes.changes if c.record.name == API))
    assert set(led.actual_of([API])) == {WANT[0], marker("east")}
    assert led.existing == 2 and not led.plan().changes
    # a delete at a managed name DNS holds nothing for changes nothing either
    empty = ledger(api(), WANT, [], ownership={"owner_id": "east"})
    empty.applied(ChangeSet(zone="example.test.", changes=(Change("delete", WANT[0]),)))
    assert empty.existing == 0 and empty.actual_list() == []


def test_who_may_write_a_name_is_said_with_the_fix() -> None:
    assert may_write(API, {"west", "north"}, {"A"}, owner="east", take_over=False) == (
        "owned by controller 'north, west' (set ownership.take_over to take it over)")
    assert may_write(API, set(), {"AAAA", "A"}, owner="east", take_over=False) == (
        "holds A, AAAA records but no failover marker (the TXT at the marker name was never "
        "written, or was deleted by hand or by a sync tool's prune): restore the marker, or "
        "set ownership.take_over")
    assert may_write(API, {"west"}, {"A"}, owner="east", take_over=True) is None
    assert may_write(API, set(), set(), owner="east", take_over=False) is None


def test_a_marker_goes_with_the_name_it_marks() -> None:
    reg = Registry("_failover", "east")
    assert reg.owner_of(f"_failover.{API}") == API and reg.owner_of(API) == API


def plan_step_cfg(**extra: Any) -> Any:
    return config({"a": ["127.0.1.1"], "b": ["127.0.2.1"]},
                  [{"name": API, "type": "A", "ttl": 30, "policy": "failover",
                    "order": ["a", "b"], "failback_delay": 60}],
                  ownership={"owner_id": "east", "prune": False}, **extra)


def test_a_plan_step_decides_claims_and_diffs_as_asked() -> None:
    cfg = plan_step_cfg()
    # a back from an outage 10 s ago: held on b for the failback delay (decided at `now`)
    on_b = Decision(name=API, type="A", ttl=30, policy="failover", regions=("b",),
                    values=("127.0.2.1",), shares={"b": 1.0}, basis="health", reason="",
                    at=900.0, tier=1, usable=("b",), by_region={"b": ("127.0.2.1",)})
    snap = snapshot(cfg, up_since={"a": 990.0}, now=1000.0)
    actual = ours(OLD)  # a name this owner marked, kept (prune: false)
    step = plan_step(cfg, snap, Overrides(), {on_b.key: on_b}, 1000.0, actual)
    [d] = step.decisions
    assert d.basis == "hold" and d.values == ("127.0.2.1",) and "in 50 s" in d.reason
    assert {(c.action, c.record) for c in step.changes.changes} == {
        ("create", R(API, "A", 30, ["127.0.2.1"])), ("create", marker("east"))}
    assert step.blocked == {} and step.violations == [] and step.pruned == []
    assert step.kept == [OLD]
    # without ownership: the answer alone; native (a flag, or per name): routing records
    bare = plan_step(cfg, snap, Overrides(), {on_b.key: on_b}, 1000.0, [], ownership=False)
    assert [c.record for c in bare.changes.changes] == [R(API, "A", 30, ["127.0.2.1"])]
    for native in (False, lambda name: False):
        plain = plan_step(cfg, snap, Overrides(), {}, 1000.0, [], native=native)
        assert all(c.record.set_identifier is None for c in plain.changes.changes)
    routed = plan_step(cfg, snap, Overrides(), {}, 1000.0, [], native=lambda name: True)
    assert any(c.record.set_identifier for c in routed.changes.changes)


def test_a_name_another_owner_marked_is_left_alone_and_said_why() -> None:
    cfg = plan_step_cfg()
    step = plan_step(cfg, snapshot(cfg), Overrides(), {}, 1000.0,
                     [R(API, "A", 30, ["127.0.9.9"]), marker("west")])
    assert step.blocked == {API: "owned by controller 'west' (set ownership.take_over to "
                                 "take it over)"}
    assert not step.changes


def test_decisions_taken_in_say_which_names_changed_and_keep_their_ttl() -> None:
    cfg = plan_step_cfg()
    led = Ledger(cfg, native=lambda name: name == "www.example.test.")
    [d] = plan_step(cfg, snapshot(cfg), Overrides(), {}, 1000.0, []).decisions
    assert led.set_decisions([d]) == {API}
    assert led.desired[d.key] == (R(API, "A", 30, ["127.0.1.1"]),)  # the record's TTL
    assert led.set_decisions([d]) == set()  # the same again: nothing changed
    native = Ledger(cfg, native=lambda name: name == API)
    native.set_decisions([d])
    assert {rs.set_identifier for rs in native.desired[d.key]} == {"primary", "secondary"}


def test_decorated_decisions_compare_as_decorated() -> None:
    # a provider's attributes (Route 53's health check ids) are part of what is desired:
    # the same decision again is no change, though undecorated it differs
    cfg = plan_step_cfg()
    [d] = plan_step(cfg, snapshot(cfg), Overrides(), {}, 1000.0, []).decisions
    led = Ledger(cfg, decorate=lambda sets: [replace(rs, health_check_id="hc-1") for rs in sets])
    assert led.set_decisions([d]) == {API}
    assert [rs.health_check_id for rs in led.desired[d.key]] == ["hc-1"]
    assert led.set_decisions([d]) == set()
    # a decoration that keeps none of a name's record sets leaves it nothing to write
    bare = Ledger(cfg, decorate=lambda sets: [])
    assert bare.set_decisions([d]) == {API} and bare.desired[d.key] == ()


WWW = "www.example.test."
OLD2 = "old2.example.test."


def test_a_plan_goes_on_past_a_blocked_or_kept_name_and_names_what_it_manages() -> None:
    actual = [R(API, "A", 30, ["127.0.9.9"]), marker("west"), *ours(OLD), *ours(OLD2)]
    led = ledger([*api(), {"name": WWW, "type": "A"}], [*WANT, R(WWW, "A", 30, ["127.0.1.1"])],
                 actual, ownership={"owner_id": "east", "prune": False})
    p = led.plan()
    assert list(p.blocked) == [API] and p.kept == [OLD, OLD2] and p.decisions == []
    assert {(c.action, c.record.name) for c in p.changes.changes} == {
        ("create", WWW), ("create", f"_failover.{WWW}")}
    assert p.changes.zone == "example.test."
    # pruned: the orphans' keys are managed too, beside the names written
    pruned = ledger([{"name": WWW, "type": "A"}], [R(WWW, "A", 30, ["127.0.1.1"])],
                    [*ours(OLD)], ownership={"owner_id": "east"}).plan()
    assert pruned.changes.managed == {(WWW, "A"), (f"_failover.{WWW}", "TXT"), (OLD, "A"),
                                      (f"_failover.{OLD}", "TXT")}


def test_a_marker_shared_with_us_is_ours_to_write_and_a_name_without_answer_keeps_one() -> None:
    shared = R(f"_failover.{API}", "TXT", 30, [marker_value("east"), marker_value("west")])
    p = ledger(api(), WANT, [R(API, "A", 30, ["127.0.9.9"]), shared],
               ownership={"owner_id": "east"}).plan()
    assert not p.blocked and {c.record.type for c in p.changes.changes} == {"A", "TXT"}
    # nothing desired (a record failing closed): the marker alone, at 300 s
    p = ledger(api(fail_mode="closed"), [], [], ownership={"owner_id": "east"}).plan()
    assert [(c.action, c.record.name, c.record.ttl) for c in p.changes.changes] == [
        ("create", f"_failover.{API}", 300)]


def test_an_orphans_answers_plain_and_routed_are_deleted_in_zone_order() -> None:
    plain = R(OLD, "A", 30, ["127.0.9.9"])
    routed = R(OLD, "A", 30, ["127.0.9.8"], set_identifier="primary", failover="PRIMARY")
    p = ledger(api(), WANT, [*ours(API, "127.0.1.1"), plain, routed, marker("east", OLD)],
               ownership={"owner_id": "east"}).plan()
    assert [c.record for c in p.changes.changes] == [marker("east", OLD), plain, routed]


def test_before_any_read_a_ledger_counts_nothing_existing() -> None:
    cfg = plan_step_cfg()
    led = Ledger(cfg)
    assert led.existing == 0 and led.plan().changes.existing == 0
    # and it claims what it writes unless told otherwise: the answer with its marker
    led.set_decisions(plan_step(cfg, snapshot(cfg), Overrides(), {}, 1000.0, []).decisions)
    assert {c.record.name for c in led.plan().changes.changes} == {API, f"_failover.{API}"}
