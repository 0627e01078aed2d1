"""The status page at `/`: what an on-call person looks at during an incident.

Server-rendered HTML from the data /status has (regions, endpoints, overrides, records,
problems) plus the history (the last 50 events, and the last hour of decisions drawn as
an inline SVG timeline per record that changed). No JavaScript, no external assets: it
works offline, refreshes itself every 5 s and reads on a phone. Its one style sheet is
allowed by its hash (CSP): the page has no style attribute and no script.
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from failover import readout
from failover.state.store import Event

if TYPE_CHECKING:
    from failover.config import Config

WINDOW = 3600.0  # seconds of timeline
MAX_RECORDS = 500  # rows in the records table; /status has them all
MAX_TIMELINES = 50
PALETTE = ("#2e7d32", "#1565c0", "#ef6c00", "#6a1b9a", "#00838f", "#ad1457", "#5d4037")

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#222;background:#fafafa}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;width:100%;background:#fff}
td,th{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f0f0f0}.ok{color:#2e7d32;font-weight:600}.bad{color:#c62828;font-weight:700}
.drained{color:#ef6c00;font-weight:700}.muted{color:#777}.box{padding:8px 10px;margin:8px 0;
border-radius:4px}.alert{background:#ffebee;border:1px solid #ef9a9a}.fine{background:#e8f5e9;
border:1px solid #a5d6a7}.wrap{overflow-x:auto}code{font-size:12px}
svg text{font:11px system-ui,sans-serif}.partly{color:#ef6c00;font-weight:700}
@media (max-width:600px){table.cards,.cards tr,.cards td{display:block}
.cards tr:first-child{display:none}.cards tr{border-bottom:2px solid #ddd;padding:4px 0}
.cards td{border:0;padding:1px 6px;overflow-wrap:anywhere}
.cards td::before{content:attr(data-l) ": ";color:#777}}
""" + "".join(f".c{i}{{color:{c}}}" for i, c in enumerate(PALETTE)) + "\n"
# what the page may load or run: its own style sheet, nothing else (it has no script)
CSP = ("default-src 'none'; style-src 'sha256-"
       + base64.b64encode(hashlib.sha256(CSS.encode()).digest()).decode()
       + "'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(at: float | None, now: float) -> str:
    if not at:
        return ""
    ago = max(0.0, now - at)
    span = f"{ago:.0f} s" if ago < 120 else f"{ago / 60:.0f} min" if ago < 7200 else (
        f"{ago / 3600:.1f} h")
    return f"{time.strftime('%H:%M:%S', time.gmtime(at))}Z ({span} ago)"


def configured(cfg: Config) -> list[tuple[str, str, str]]:
    """The records a config manages, (name, type, policy): what the page lists before
    the first decision, and the records whose timelines it draws."""
    return [(r.name, r.type, r.policy) for r in cfg.records]


def render(status: Mapping[str, Any], events: Sequence[Event],
           decisions: Sequence[Event], served: Mapping[tuple[str, ...], Sequence[str]],
           now: float, records: Sequence[tuple[str, str, str]] | None = None) -> bytes:
    """The page, from /status's data, the newest events (newest last) and the decision
    events of the window (oldest first); `records` (from `configured`): the records the
    config manages now (None: those /status has)."""
    if records is None:
        records = [(r["name"], r["type"], r["policy"]) for r in status.get("records", [])]
    out = ["<!doctype html><html lang=en><head><meta charset=utf-8>",
           '<meta name=viewport content="width=device-width,initial-scale=1">',
           '<meta http-equiv=refresh content=5>',
           f"<title>failover: {_e(status.get('zone'))}</title><style>{CSS}</style></head><body>"]
    zones = readout.zones(status)
    ready = status.get("ready")
    problems = [*readout.all_out(status.get("records", [])), *(status.get("problems") or [])]
    out.append(f"<h1>failover: {_e(zones)}</h1><div class=muted>provider "
               f"{_e(status.get('provider'))}; at {_when(now, now)}"
               f"{'; DRY RUN' if status.get('dry_run') else ''}</div>")
    if not ready:
        out.append("<div class='box alert'>not ready: waiting for the first probe round</div>")
    elif problems:
        out.append("<div class='box alert' id=problems><b>degraded</b><ul>" + "".join(
            f"<li>{_e(p)}</li>" for p in problems) + "</ul></div>")
    else:
        out.append("<div class='box fine' id=problems>ready: nothing degraded</div>")
    last = status.get("last_tick") or {}
    if last.get("error"):
        out.append(f"<div class='box alert'>last tick's error: {_e(last['error'])}</div>")
    out += _regions(status, now)
    out += _overrides(status, now)
    if status.get("not_written"):
        out.append("<h2>Names it may not write</h2><table><tr><th>name<th>why")
        out += [f"<tr><td>{_e(n['name'])}<td>{_e(n['why'])}" for n in status["not_written"]]
        out.append("</table>")
    out += _records(status, served, records)
    out += _timelines({f"{name} {rtype}" for name, rtype, _ in records}, decisions, now)
    out.append("<h2>Last events</h2><div class=wrap><table><tr><th>when<th>kind<th>what")
    out += [f"<tr><td>{_when(e.at, now)}<td>{_e(e.kind)}<td>{_e(e.message)}"
            for e in reversed(events)]
    out.append("</table></div><p class=muted>JSON: <a href=/status>/status</a>, "
               "metrics: <a href=/metrics>/metrics</a></p></body></html>")
    return "\n".join(out).encode()


def _regions(status: Mapping[str, Any], now: float) -> list[str]:
    out = ["<h2>Regions</h2><div class=wrap><table id=regions><tr><th>region<th>state"
           "<th>endpoints"]
    for name, region in status.get("regions", {}).items():
        kind, words = readout.region_state(region)
        css = {"healthy": "ok", "unhealthy": "bad"}.get(kind, kind)
        state = f"<span class={css}>{_e(words)}</span>"
        eps = "<br>".join(
            f"{_e(ep['id'])}: " + ("<span class=ok>healthy</span>" if ep["healthy"] else
                                  "<span class=bad>unhealthy</span>")
            + (f" since {_when(ep['since'], now)}" if ep.get("since") else "")
            + (f" <span class=muted>{_e(ep['reason'])}</span>" if ep.get("reason") else "")
            for ep in region["endpoints"])
        out.append(f"<tr data-region='{_e(name)}'><td>{_e(name)}<td>{state}<td>{eps}")
    out.append("</table></div>")
    return out


def _overrides(status: Mapping[str, Any], now: float) -> list[str]:
    active = [o for o in status.get("overrides", []) if o.get("active")]
    if not active:
        return ["<h2>Overrides</h2><p class=muted>none</p>"]
    out = ["<h2>Overrides</h2><div class=wrap><table id=overrides class=cards><tr><th>what"
           "<th>who<th>why<th>since<th>expires"]
    for o in active:
        what = (f"drain {o['region']}" if o["kind"] == "drain" else
                f"pin {o['target']} to {o['region']}" if o["kind"] == "pin" else
                f"drill: checks of {o['region']} made to fail")
        out.append(f"<tr><td data-l=what>{_e(what)}<td data-l=who>{_e(o['who'])}"
                   f"<td data-l=why>{_e(o['why'])}<td data-l=since>{_when(o['at'], now)}"
                   "<td data-l=expires>"
                   f"{_when(o['expires'], now).split(' (')[0] if o.get('expires') else 'never'}")
    out.append("</table></div>")
    return out


def _records(status: Mapping[str, Any], served: Mapping[tuple[str, ...], Sequence[str]],
             configured: Sequence[tuple[str, str, str]]) -> list[str]:
    records = status.get("records", [])
    if records and records[0].get("network"):
        return _network_records(records, served)
    if not records and configured:  # no decision yet: the records still have names
        out = [f"<h2>Records ({len(configured)})</h2><div class=wrap><table id=records "
               "class=cards><tr><th>name<th>type<th>policy<th>answer"]
        out += [f"<tr><td data-l=name>{_e(name)}<td data-l=type>{_e(rtype)}"
                f"<td data-l=policy>{_e(policy)}<td data-l=answer class=muted>"
                "waiting for the first probe round"
                for name, rtype, policy in configured[:MAX_RECORDS]]
        if len(configured) > MAX_RECORDS:
            out.append(f"<tr><td colspan=4 class=muted>and {len(configured) - MAX_RECORDS} "
                       "more: see /status")
        return [*out, "</table></div>"]
    out = [f"<h2>Records ({len(records)})</h2><div class=wrap><table id=records class=cards>"
           "<tr><th>name<th>type<th>policy<th>desired<th>in DNS<th>why"]
    for r in records[:MAX_RECORDS]:
        want = sorted(r.get("desired", []))
        have = served.get((r["name"], r["type"]))
        shown = "unknown" if have is None else ", ".join(sorted(have)) or "-"
        differs = have is not None and sorted(have) != want
        out.append(f"<tr><td data-l=name>{_e(r['name'])}<td data-l=type>{_e(r['type'])}"
                   f"<td data-l=policy>{_e(r['policy'])}"
                   f"<td data-l=desired>{_e(', '.join(want) or '-')}"
                   f"<td data-l='in DNS'{' class=bad' if differs else ''}>{_e(shown)}"
                   f"{' (differs)' if differs else ''}"
                   f"<td data-l=why>{_e(r.get('reason', ''))}")
    if len(records) > MAX_RECORDS:
        out.append(f"<tr><td colspan=6 class=muted>and {len(records) - MAX_RECORDS} more: "
                   "see /status")
    out.append("</table></div>")
    return out


def _network_records(records: Sequence[Mapping[str, Any]],
                     served: Mapping[tuple[str, ...], Sequence[str]]) -> list[str]:
    """One row per record, each client network's answer side by side (desired, what its
    view or location serves when it differs, and why)."""
    rows: dict[tuple[str, str], dict[str, Mapping[str, Any]]] = {}
    policy: dict[tuple[str, str], str] = {}
    networks: list[str] = []
    for r in records:
        key = (r["name"], r["type"])
        rows.setdefault(key, {})[r["network"]] = r
        policy[key] = r["policy"]
        if r["network"] not in networks:
            networks.append(r["network"])
    out = [f"<h2>Records ({len(rows)}, {len(networks)} networks)</h2><div class=wrap>"
           "<table id=records class=cards><tr><th>name<th>type<th>policy"
           + "".join(f"<th>{_e(n)}" for n in networks)]
    for (name, rtype), by_net in list(rows.items())[:MAX_RECORDS]:
        cells = []
        for n in networks:
            if n not in by_net:
                cells.append(f"<td data-l='{_e(n)}' class=muted>-")
                continue
            r = by_net[n]
            want = sorted(r.get("desired", []))
            have = served.get((name, rtype, n))
            differs = have is not None and sorted(have) != want
            dns = (f" <span class=bad>(in DNS: {_e(', '.join(sorted(have)) or '-')})</span>"
                   if differs and have is not None else "")
            cells.append(f"<td data-l='{_e(n)}'>{_e(', '.join(want) or '-')}{dns}"
                         f"<br><span class=muted>{_e(r.get('reason', ''))}</span>")
        out.append(f"<tr><td data-l=name>{_e(name)}<td data-l=type>{_e(rtype)}"
                   f"<td data-l=policy>{_e(policy[(name, rtype)])}" + "".join(cells))
    if len(rows) > MAX_RECORDS:
        out.append(f"<tr><td colspan={3 + len(networks)} class=muted>and "
                   f"{len(rows) - MAX_RECORDS} more: see /status")
    out.append("</table></div>")
    return out


def _timelines(current: set[str], decisions: Sequence[Event], now: float) -> list[str]:
    """One bar per record of the config (`current`: "name type") that changed answer in
    the window: who answered when, and a mark at each change. Records no longer in the
    config are counted on one line, not drawn."""
    start = now - WINDOW
    changes: dict[str, list[tuple[float, str]]] = {}
    removed: set[str] = set()
    for e in decisions:
        base = e.subject.split(" (", 1)[0]
        if base not in current:
            if e.at >= start:
                removed.add(base)
            continue
        values = ",".join(e.detail.get("values", [])) or "(no answer)"
        # a line for several networks of a record is a row per network
        for subject in [f"{base} ({n})" for n in e.detail.get("networks") or []] or [base]:
            changes.setdefault(subject, []).append((e.at, values))
    moved = {s: c for s, c in changes.items() if any(at >= start for at, _ in c)}
    out = ["<h2>Last hour</h2>"]
    if removed:
        out.append(f"<p class=muted id=removed>{len(removed)} record(s) no longer in the "
                   "config changed answer in the last hour: not shown</p>")
    if not moved:
        return [*out, "<p class=muted id=timeline>no answer changed in the last hour</p>"]
    colors: dict[str, str] = {}
    width, left, row = 900, 190, 34
    subjects = sorted(moved)[:MAX_TIMELINES]
    height = row * len(subjects) + 24
    svg = [f"<div class=wrap><svg id=timeline viewBox='0 0 {width} {height}' width='100%' "
           f"role=img aria-label='answers over the last hour'>"]
    span = width - left - 10

    def x(at: float) -> float:
        return left + span * (max(start, min(now, at)) - start) / WINDOW

    for i, subject in enumerate(subjects):
        y = 8 + i * row
        svg.append(f"<text x=0 y={y + 14}>{_e(subject)}</text>")
        points = sorted(moved[subject])
        before = [p for p in points if p[0] < start]
        inside = [p for p in points if p[0] >= start]
        segments = ([(start, before[-1][1])] if before else []) + inside
        for j, (at, values) in enumerate(segments):
            end = segments[j + 1][0] if j + 1 < len(segments) else now
            color = colors.setdefault(values, PALETTE[len(colors) % len(PALETTE)])
            svg.append(f"<rect x={x(at):.1f} y={y} width={max(1.0, x(end) - x(at)):.1f} "
                       f"height=18 fill='{color}'><title>{_e(values)} from "
                       f"{_when(at, now)}</title></rect>")
            if at >= start and (j > 0 or before):
                svg.append(f"<line class=failover x1={x(at):.1f} x2={x(at):.1f} y1={y - 3} "
                           f"y2={y + 21} stroke='#c62828' stroke-width=2>"
                           f"<title>changed to {_e(values)} at {_when(at, now)}</title></line>")
    axis = height - 6
    for k in range(7):
        at = start + k * WINDOW / 6
        anchor = "start" if k == 0 else "end" if k == 6 else "middle"
        svg.append(f"<text x={x(at):.1f} y={axis} text-anchor={anchor}>"
                   f"{time.strftime('%H:%M', time.gmtime(at))}Z</text>")
    svg.append("</svg></div>")
    legend = " ".join(f"<span class=c{PALETTE.index(c)}>&#9632;</span> {_e(v)}"
                      for v, c in colors.items())
    more = len(moved) - len(subjects)
    return [*out, *svg, f"<p class=muted>{legend}; red marks: answer changes"
            + (f"; and {more} more records changed" if more > 0 else "") + "</p>"]
