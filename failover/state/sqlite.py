"""The SQLite state store (WAL): safe for one controller plus CLI readers and writers."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from failover.errors import FailoverError
from failover.health import CheckState, EndpointHealth, HealthSnapshot, Outcome
from failover.state.store import Event, Override, OverrideKind
from policies import Decision

SCHEMA = """
CREATE TABLE IF NOT EXISTS overrides (
    kind TEXT NOT NULL, target TEXT NOT NULL, region TEXT NOT NULL, who TEXT NOT NULL,
    why TEXT NOT NULL, at REAL NOT NULL, expires REAL, PRIMARY KEY (kind, target));
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
"""


class SqliteState:
    """State in one SQLite file; every call is one short transaction."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), timeout=10, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise FailoverError(f"cannot open state {path}: {exc}") from None
        self._lock = threading.Lock()
        self._version: int | None = None

    def _run(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise FailoverError(f"state {self.path}: {exc}") from None

    def changed_elsewhere(self) -> bool:
        # data_version moves when another connection commits; this one's own writes do not
        version = int(self._run("PRAGMA data_version")[0][0])
        changed = self._version is not None and version != self._version
        self._version = version
        return changed

    # overrides
    def overrides(self) -> list[Override]:
        rows = self._run("SELECT kind, target, region, who, why, at, expires FROM overrides "
                         "ORDER BY at")
        return [Override(*row) for row in rows]

    def set_override(self, override: Override) -> None:
        self._run("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?)",
                  (override.kind, override.target, override.region, override.who, override.why,
                   override.at, override.expires))

    def clear_override(self, kind: OverrideKind, target: str) -> bool:
        found = self._run("SELECT 1 FROM overrides WHERE kind = ? AND target = ?", (kind, target))
        self._run("DELETE FROM overrides WHERE kind = ? AND target = ?", (kind, target))
        return bool(found)

    # health and decisions
    def save_health(self, snapshot: HealthSnapshot) -> None:
        data = {"at": snapshot.at, "endpoints": {k: asdict(v) for k, v in
                                                  snapshot.endpoints.items()}}
        self._put("health", data)

    def load_health(self) -> HealthSnapshot | None:
        data = self._get("health")
        if data is None:
            return None
        eps = {}
        for key, h in data["endpoints"].items():
            recent = tuple(Outcome(**o) for o in h.pop("recent", []))
            eps[key] = EndpointHealth(**h, recent=recent)
        return HealthSnapshot(at=data["at"], endpoints=eps)

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self._put("checks", {k: asdict(v) for k, v in states.items()})

    def load_checks(self) -> dict[str, CheckState]:
        out = {}
        for key, v in (self._get("checks") or {}).items():
            v["recent"] = tuple(Outcome(**o) for o in v["recent"])
            out[key] = CheckState(**v)
        return out

    def save_decisions(self, decisions: list[Decision]) -> None:
        # one decision at a time: one json.dumps of 10,000 holds the interpreter (and the
        # event loop that runs the probes) for a hundred milliseconds
        text = "[" + ",".join(json.dumps({**asdict(d), "shares": dict(d.shares),
                                          "by_region": dict(d.by_region)})
                              for d in decisions) + "]"
        self._run("INSERT OR REPLACE INTO kv VALUES (?, ?)", ("decisions", text))

    def load_decisions(self) -> dict[tuple[str, str], Decision]:
        out = {}
        for d in self._get("decisions") or []:
            d["regions"], d["values"] = tuple(d["regions"]), tuple(d["values"])
            d["usable"] = tuple(d.get("usable", ()))
            d["by_region"] = {r: tuple(v) for r, v in d.get("by_region", {}).items()}
            if d.get("last_good"):
                d["last_good"] = (tuple(d["last_good"][0]), tuple(d["last_good"][1]))
            decision = Decision(**d)
            out[decision.key] = decision
        return out

    def _put(self, key: str, value: Any) -> None:
        self._run("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def _get(self, key: str) -> Any:
        rows = self._run("SELECT value FROM kv WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else None

    # history
    def record(self, events: list[Event]) -> None:
        if not events:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN")
                self._db.executemany(
                    "INSERT INTO events (at, kind, subject, message, detail) VALUES (?, ?, ?, ?, ?)",
                    [(e.at, e.kind, e.subject, e.message, json.dumps(dict(e.detail)))
                     for e in events])
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._db.execute("ROLLBACK")
                raise FailoverError(f"state {self.path}: {exc}") from None

    def history(self, since: float | None = None, limit: int = 1000,
                kind: str | None = None) -> list[Event]:
        rows = self._run("SELECT at, kind, subject, message, detail FROM events WHERE at >= ? "
                         "AND (? IS NULL OR kind = ?) ORDER BY id DESC LIMIT ?",
                         (since or 0.0, kind, kind, limit))
        return [Event(at, kind, subject, message, json.loads(detail))
                for at, kind, subject, message, detail in reversed(rows)]

    def close(self) -> None:
        with self._lock:
            self._db.close()
