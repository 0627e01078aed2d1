"""`failover drill`: a controlled failover of a region against the live setup, timed.

It records what every authoritative server of the zone answers for the records that
answer from the region (failover/dns/authoritative.py), forces the region out (a drain
override, or a fault that makes its checks fail inside the running controller),
measures until every server's answer has moved, restores, and measures the way back.
Per record it reports detection (the controller's decision), write (its DNS update),
served (the first server answering the new way), total (the last: every authoritative
answer has moved) and each server's own time. A zone served from BIND views (one per
client network) is watched in every view of every server, each asked with its view's
key: each network's answer is timed on its own (a network whose answer does not hold
the region has nothing to move), and the total is the last of them. The way back
ends when every server answers what the controller decides once it has taken the
restore up, which is not always the region again: a failback delay holds the answer
for a while, and latency hysteresis may keep a region that is as fast. The result goes
into the history.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, Literal

from failover.config import split_host_port
from failover.dns.authoritative import Answers, Reading, Server, read_all
from failover.dns.base import DnsError
from failover.dns.served import soa_serial
from failover.errors import FailoverError, InputError
from failover.overrides import stranded, who
from failover.plan import ManagedKey
from failover.records import canonical_value
from failover.state.store import Event, Override, OverrideKind, StateStore
from policies.model import decision_key

if TYPE_CHECKING:
    from failover.config import Config

Mode = Literal["drain", "fail-checks"]
# has a server's answer arrived: the record, the view's network ("" without views), the answer
Judge = Callable[[ManagedKey, str, frozenset[str]], bool]


def region_values(cfg: Config, region: str, key: ManagedKey) -> frozenset[str]:
    """The values the region contributes to a record of this type, canonical."""
    out = set()
    pool = next((r.pool for r in cfg.records if (r.name, r.type) == key), None)
    for _, ep in cfg.endpoints_of(region, pool):
        try:
            out.add(canonical_value(key[1], ep.address))
        except ValueError:  # an IPv6 endpoint of an A record, and so on
            continue
    return frozenset(out)


def decision_subjects(event: Event) -> list[str]:
    """The records (and networks) a decision line is about: `name type`, or one
    `name type (network)` per network it names (networks with the same news share one
    line)."""
    nets = event.detail.get("networks") or []
    base = event.subject.split(" (", 1)[0]
    return [f"{base} ({n})" for n in nets] if nets else [event.subject]


def _moved(answer: frozenset[str], values: frozenset[str]) -> bool:
    return bool(answer) and not answer & values


def _taken_up(state: StateStore, since: float, mine: tuple[str, str, float]) -> bool:
    """Whether the controller has taken the drill's override up and then dropped it
    (its "overrides in force" events, matched by content, not by clock)."""
    seen = False
    for e in state.history(since=since, kind="override"):
        if e.subject == "controller":
            listed = {(o["kind"], o["target"], o["at"]) for o in e.detail.get("in_force", ())}
            if mine in listed:
                seen = True
            elif seen:
                return True
    return False


def _back(state: StateStore, since: float, mine: tuple[str, str, float], region: str,
          values: dict[ManagedKey, frozenset[str]]) -> Judge:
    """After the restore: an answer is back when it is what the controller decides once
    it has taken the restore up, counts the region usable again (after its checks have
    passed, in fail-checks mode) and no failback delay is still running."""
    if not _taken_up(state, since, mine):
        return lambda k, n, a: False
    decisions = state.load_decisions()

    def judge(k: ManagedKey, network: str, answer: frozenset[str]) -> bool:
        d = decisions.get(decision_key(k[0], k[1], network))
        if d is None:
            return bool(answer & values[k])
        if region not in d.usable or (d.policy == "failover" and d.basis == "hold"):
            return False
        return answer == frozenset(d.values)
    return judge


def _writes(key: ManagedKey, view: str | None = None) -> Callable[[Event], bool]:
    """Whether a DNS event's changes touch the record `key` (in `view`, when given)."""
    def match(e: Event) -> bool:
        return any(c.get("name") == key[0] and c.get("type") == key[1]
                   and (view is None or c.get("set_identifier") == view)
                   for c in e.detail.get("changes", ()))
    return match


def _serials(zone: str, servers: list[Server], timeout: float) -> str:
    """Each server's SOA serial: a secondary stuck behind its primary shows here."""
    out = []
    for server in servers:
        try:
            serial = soa_serial(server.address, server.port, zone, timeout, server.signer)
            out.append(f"{server} {serial}")
        except DnsError as exc:
            out.append(f"{server} ({exc})")
    return f"SOA serials of {zone}: " + ", ".join(out)


def controller_ready(cfg: Config, timeout: float = 2.0) -> float:
    """The controller's clock minus this one's (history times are the controller's);
    raises FailoverError unless the config's controller answers /readyz, since a drill is
    carried out by the running controller."""
    import urllib.error
    import urllib.request

    from failover.service import api_token

    host, port = split_host_port(cfg.controller.listen)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/readyz"
    request = urllib.request.Request(url)
    try:
        token = api_token(cfg)
    except FailoverError:
        token = None  # the token's variable or file is not ours to read
    if token is not None and token.secret:
        # the controller says its clock only to a caller holding the token; without it,
        # its clock is taken to be ours (true unless the wall clock stepped since its start)
        request.add_header("Authorization", f"Bearer {token.secret}")
    try:
        before = time.time()
        with urllib.request.urlopen(request, timeout=timeout) as response:
            theirs = response.headers.get("X-Failover-Clock")
            ours = (before + time.time()) / 2
            return float(theirs) - ours if theirs else 0.0
    except urllib.error.HTTPError as exc:
        raise FailoverError(f"the controller at {host}:{port} is not ready ({exc.code}): "
                            "a drill waits for its first full probe round") from None
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise FailoverError(f"no controller answers at {url} ({reason}): a drill needs it "
                            "running (failover run --config ...)") from None


def drill(cfg: Config, state: StateStore, servers: list[Server], region: str, mode: Mode, *,
          timeout: float = 120.0, poll: float = 0.02, source: str = "",
          offset: float = 0.0, progress: Callable[[str], None] | None = None
          ) -> dict[str, Any]:
    """Run one drill; raises InputError when it would strand a record (or when no record
    answers from the region), FailoverError when the answers do not move (or come back)
    on every server within `timeout`. `offset`: the controller's clock minus ours
    (`controller_ready`), to read the controller's history times."""
    if region not in cfg.regions:
        raise InputError(f"unknown region '{region}' (regions: {', '.join(cfg.regions)})")
    left = stranded(cfg, state, {region}, time.time())
    if left:
        raise InputError(f"a drill of {region} would leave {', '.join(left)} with no healthy "
                         "region: refused")
    try:
        return _drill(cfg, state, servers, region, mode, timeout=timeout, poll=poll,
                      source=source, offset=offset, progress=progress or (lambda _: None))
    except FailoverError as exc:
        # a failed drill is history too: it is the proof that failover did not happen
        state.record([Event(time.time() + offset, "drill", region,
                            f"drill of {region} ({mode}) failed: {exc}",
                            {"region": region, "mode": mode, "failed": True,
                             "error": str(exc), "actor": who()})])
        raise


def _drill(cfg: Config, state: StateStore, servers: list[Server], region: str, mode: Mode, *,
           timeout: float, poll: float, source: str, offset: float,
           progress: Callable[[str], None]) -> dict[str, Any]:
    # `timeout` bounds the whole drill: the way there and the way back share it
    deadline = time.monotonic() + timeout
    keys = {(r.name, r.type) for r in cfg.records}
    values = {k: region_values(cfg, region, k) for k in keys}
    views = list(dict.fromkeys(s.view for s in servers if s.view))  # [] without views
    asked = _asked(servers, views)
    with ThreadPoolExecutor(max_workers=min(16, len(servers))) as pool:
        def read(ks: set[ManagedKey]) -> Reading:
            return read_all(servers, ks, cfg.drill.timeout, pool)

        before = read(keys)
        if before.errors:  # fail now, not after the timeout with a region drained
            raise FailoverError("drill: not every authoritative server answers: "
                                + "; ".join(f"{s}: {e}" for s, e in before.errors.items()))
        targets = _to_move(before, servers, keys, values)
        if not targets:
            raise InputError(f"no record answers from {region} now: nothing to drill")
        affected = set(targets)
        idle = [v for v in views if not any(s.view == v for ss in targets.values() for s in ss)]
        kind: OverrideKind = "drain" if mode == "drain" else "fault"
        # durations on the monotonic clock; t0 (wall) only to read the history
        t0, m0 = time.time(), time.monotonic()
        state.set_override(Override(kind, region, region, who(), "drill", t0))
        progress((f"{region} drained" if mode == "drain" else
                  f"checks of {region} failing (each after its failure_threshold probes)")
                 + f": waiting for {len(affected)} record(s) to move on {asked}"
                 + "".join(f"; {v}: nothing to move (no answer of its view holds {region})"
                           for v in idle))
        serials = functools.partial(_serials, cfg.zone, servers, cfg.drill.timeout)
        try:
            moved = _wait(read, targets,
                          lambda: lambda k, n, a: _moved(a, values[k]), deadline, poll, "move",
                          serials,
                          lambda k, s, t: progress(f"{k[0]} {k[1]} moved on {s} after "
                                                   f"{t - m0:.2f} s"), timeout)
        finally:
            state.clear_override(kind, region)
        m1 = time.monotonic()
        progress(f"moved after {m1 - m0:.2f} s; restoring {region}: waiting for the answers "
                 "to come back")
        slow = [f"{r.name} (failback_delay {r.failback_delay:g} s)" for r in cfg.records
                if (r.name, r.type) in affected and r.failback_delay >= deadline - m1]
        back = _wait(read, targets,
                     lambda: _back(state, t0 + offset - 60, (kind, region, t0), region, values),
                     deadline, poll, "come back",
                     lambda: serials()
                     + (f"; {', '.join(slow)} come back only after their failback delay, "
                        "longer than what was left of --timeout: give a longer --timeout"
                        if slow else ""),
                     lambda k, s, t: progress(f"{k[0]} {k[1]} back on {s} after "
                                              f"{t - m1:.2f} s"), timeout)
    decided: dict[str, float] = {}
    for e in state.history(since=t0 + offset, kind="decision", limit=100_000):
        for subject in decision_subjects(e):
            decided.setdefault(subject, e.at - offset)
    writes = [e for e in state.history(since=t0 + offset, kind="dns", limit=100_000)
              if e.subject == "dns"]

    def detection(k: ManagedKey, view: str | None) -> float | None:
        subject = f"{k[0]} {k[1]}" + (f" ({view})" if view else "")
        return round(decided[subject] - t0, 3) if subject in decided else None

    def write(k: ManagedKey, view: str | None) -> float | None:
        # the event is stamped after the controller's own confirmation: the write is when
        # the server acknowledged it
        written = next((e.at - offset - e.detail.get("confirmed_ms", 0) / 1000
                        for e in writes if _writes(k, view)(e)), None)
        return None if written is None else round(written - t0, 3)

    ttls = {(r.name, r.type): r.ttl for r in cfg.records}
    per_record = []
    for k in sorted(affected):
        # served: the first server answering the new way (the one written to, as a rule);
        # total: the last, when every authoritative answer has moved
        entry: dict[str, Any] = {
            "record": f"{k[0]} {k[1]}",
            "before": sorted(frozenset().union(*(a[k] for a in before.answers.values()))),
            "detection_s": detection(k, None), "write_s": write(k, None),
            **_span(moved[k], back[k], m0, m1),
            # a resolver that cached the old answer keeps it up to the record's TTL
            "ttl": ttls[k],
            "behind_resolvers_s": round(max(moved[k].values()) - m0 + ttls[k], 3),
            "servers": {str(s): {"served_s": round(moved[k][s] - m0, 3),
                                 "back_s": round(back[k][s] - m1, 3)} for s in targets[k]}}
        if views:
            entry["networks"] = {}
            for v in views:
                mine = [s for s in targets[k] if s.view == v]
                said = sorted(frozenset().union(*(a[k] for s, a in before.answers.items()
                                                  if s.view == v)))
                entry["networks"][v] = {"moved": False, "before": said} if not mine else {
                    "moved": True, "before": said, "detection_s": detection(k, v),
                    "write_s": write(k, v),
                    **_span({s: moved[k][s] for s in mine}, {s: back[k][s] for s in mine},
                            m0, m1)}
            for part in ("detection_s", "write_s"):  # the first network's
                times = [n[part] for n in entry["networks"].values()
                         if n["moved"] and n[part] is not None]
                entry[part] = min(times) if times else None
        per_record.append(entry)
    report: dict[str, Any] = {
        "region": region, "mode": mode, "at": t0,
        "servers": [str(s) for s in servers], "servers_from": source, "actor": who(),
        "total_s": round(max(max(m.values()) for m in moved.values()) - m0, 3),
        "back_total_s": round(max(max(b.values()) for b in back.values()) - m1, 3),
        "behind_resolvers_s": round(max(max(m.values()) - m0 + ttls[k]
                                        for k, m in moved.items()), 3),
        "records": per_record}
    if views:
        # each network's time: when every record of its view that held the region moved
        # (and came back); a view none of whose answers held the region had nothing to move
        report["networks"] = {}
        for v in views:
            spans = [r["networks"][v] for r in per_record if r["networks"][v]["moved"]]
            report["networks"][v] = {
                "moved": bool(spans),
                "records": [r["record"] for r in per_record if r["networks"][v]["moved"]],
                **({"total_s": max(n["total_s"] for n in spans),
                    "back_total_s": max(n["back_s"] for n in spans)} if spans else {})}
    state.record([Event(time.time() + offset, "drill", region,
                        f"drill of {region} ({mode}): answers moved on {asked} in "
                        f"{report['total_s']} s, back in {report['back_total_s']} s"
                        + _networks_text(report, "; "), report)])
    return report


def _asked(servers: list[Server], views: list[str]) -> str:
    """How many servers a drill asks ("2 server(s)"; with views, each once per view)."""
    if not views:
        return f"{len(servers)} server(s)"
    where = len({(s.address, s.port) for s in servers})
    return f"{where} server(s), each in views {', '.join(views)}"


def _to_move(before: Reading, servers: list[Server], keys: set[ManagedKey],
             values: dict[ManagedKey, frozenset[str]]) -> dict[ManagedKey, list[Server]]:
    """The records that answer from the region now and, for each, the servers whose
    answer must move: every server; with views, every server of each view that answers
    from the region (one that does not has nothing to move, and is not waited for)."""
    out = {}
    for k in keys:
        holding = {s.view for s, a in before.answers.items() if a[k] & values[k]}
        if holding:
            out[k] = [s for s in servers if s.view in holding]
    return out


def _span(moved: dict[Server, float], back: dict[Server, float], m0: float,
          m1: float) -> dict[str, float]:
    """Served (the first server), total (the last) and back (the last) of some servers'
    answers, in seconds since the drill began (back: since the restore)."""
    return {"served_s": round(min(moved.values()) - m0, 3),
            "total_s": round(max(moved.values()) - m0, 3),
            "back_s": round(max(back.values()) - m1, 3)}


def network_lines(report: dict[str, Any]) -> list[str]:
    """Each network's line of a drill report made with views (none without): when its
    answers moved and came back, or that none of them held the region."""
    out = []
    for net, n in report.get("networks", {}).items():
        if n["moved"]:
            out.append(f"{net}: moved in {n['total_s']} s, back in {n['back_total_s']} s "
                       f"({', '.join(n['records'])})")
        else:
            out.append(f"{net}: nothing to move: none of its answers held {report['region']}")
    return out


def _networks_text(report: dict[str, Any], sep: str) -> str:
    return "".join(sep + line for line in network_lines(report))


def resolvers_note(report: dict[str, Any]) -> str:
    """What the drill cannot watch: clients ask caching resolvers, which keep the old
    answer up to the record's TTL after the authoritative servers moved."""
    ttls = sorted({r["ttl"] for r in report["records"]})
    return (f"clients behind caching resolvers also wait up to the record's TTL "
            f"({', '.join(f'{t} s' for t in ttls)}) for the answer they cached: up to "
            f"{report['behind_resolvers_s']} s here; a name emptied by fail_mode closed "
            "stays empty there up to the zone's negative TTL")


def _wait(read: Callable[[set[ManagedKey]], Reading],
          targets: dict[ManagedKey, list[Server]], judge: Callable[[], Judge],
          deadline: float, poll: float, what: str, explain: Callable[[], str],
          reached_one: Callable[[ManagedKey, Server, float], None], timeout: float
          ) -> dict[ManagedKey, dict[Server, float]]:
    """Poll until each record's servers (`targets`) answer it the way `judge()` accepts
    (a new judge every poll); the monotonic time each did."""
    reached: dict[ManagedKey, dict[Server, float]] = {k: {} for k in targets}
    errors: dict[Server, str] = {}
    while True:
        waiting = {k for k, ss in targets.items() if len(reached[k]) < len(ss)}
        if not waiting:
            return reached
        if time.monotonic() > deadline:
            late = "; ".join(f"{k[0]} {k[1]} at "
                             f"{', '.join(str(s) for s in targets[k] if s not in reached[k])}"
                             for k in sorted(waiting))
            why = "".join(f"; {s}: {e}" for s, e in errors.items())
            raise FailoverError(f"drill: answers did not {what} within the {timeout:g} s of "
                                f"--timeout: {late}"
                                f" (is the controller running?{why}); {explain()}")
        reading = read(waiting)
        now = time.monotonic()
        errors = reading.errors
        answers: dict[Server, Answers] = reading.answers
        accepts = judge()
        for k in waiting:
            for server in targets[k]:
                got = answers.get(server)
                if got is not None and server not in reached[k] and accepts(
                        k, server.view or "", got[k]):
                    reached[k][server] = now
                    reached_one(k, server, now)
        time.sleep(poll)
