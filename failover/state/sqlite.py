"""The SQLite state store (WAL): safe for one controller plus CLI readers and writers.

The file is created 0600 (write access to it is the authority to drain). A controller
holds an exclusive lock on `<state>.lock` (holding its PID) for as long as it runs: a
second controller on the same state is refused, naming the first, and the CLI knows
whether a controller is there to take its change up.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failover.errors import FailoverError, InputError
from failover.health import CheckState, HealthSnapshot
from failover.state import codec
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


OVERRIDE_COLUMNS = ("kind", "target", "region", "who", "why", "at", "expires")


def lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def holder(path: Path) -> int | None:
    """The PID of the controller that holds the state at `path`, None when none does."""
    lock = lock_path(path)
    try:
        fd = os.open(lock, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            return int(text) if text.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class StateInUse(InputError):
    """Another controller holds the state."""


class SqliteState:
    """State in one SQLite file; every call is one short transaction.

    With `exclusive` (the controller) it takes the state's lock, and a state it can read
    but not write (a read-only file or disk) is opened read-only: the controller runs on
    what it holds and `reopen()` tries again for writing.
    """

    def __init__(self, path: Path, exclusive: bool = False) -> None:
        self.path = path
        self.read_only = False
        self._lock_fd: int | None = None
        self._lock = threading.Lock()
        self._version: int | None = None
        self._inode: tuple[int, int] | None = None
        self._skip = codec.Skipped()  # values of the wrong shape, named once each
        if exclusive:
            self._take_lock()
        try:
            self._db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            if not exclusive or not path.exists():
                self._release_lock()
                raise FailoverError(f"cannot open state {path}: {exc}") from None
            try:
                # immutable: a WAL file cannot be opened read-only without its shared
                # memory file, which a read-only disk cannot hold; nobody can write it now
                self._db = sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True,
                                           timeout=10, check_same_thread=False,
                                           isolation_level=None)
                self._db.execute("SELECT count(*) FROM kv").fetchall()
            except sqlite3.Error as exc2:
                self._release_lock()
                raise FailoverError(f"cannot open state {path}: {exc}; not even for "
                                    f"reading: {exc2}") from None
            self.read_only = True
            self.open_error = f"state {path} opened read-only: {exc}"
        self._inode = _inode(path)

    def _connect(self) -> sqlite3.Connection:
        path = self.path
        path.parent.mkdir(parents=True, exist_ok=True)
        # created 0600 from the start, never widened after the fact
        os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
        db = sqlite3.connect(str(path), timeout=10, check_same_thread=False,
                             isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def _take_lock(self) -> None:
        lock = lock_path(self.path)
        writable = True
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            try:  # a read-only disk: a lock taken on a file opened for reading holds too
                fd = os.open(lock, os.O_RDONLY)
                writable = False
            except OSError:
                raise FailoverError(f"cannot lock state {self.path}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            text = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            pid = f"PID {text}" if text.isdigit() else "a process"
            raise StateInUse(f"state {self.path} is in use by another controller ({pid}); "
                             "one controller per state: stop it, or give this one its own "
                             "controller.state") from None
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._lock_fd)
            self._lock_fd = None

    def replaced(self) -> str | None:
        """Why the file this store has open is no longer the one at its path (deleted or
        replaced under the controller), or None. Also re-creates a lock file deleted
        under a controller that holds the state."""
        if self._lock_fd is not None and _inode(lock_path(self.path)) != _inode(
                self._lock_fd):
            self._release_lock()
            with contextlib.suppress(FailoverError):
                self._take_lock()
        now = _inode(self.path)
        if now == self._inode:
            return None
        return f"state {self.path} was deleted" if now is None else (
            f"state {self.path} was replaced by another file")

    def reopen(self) -> None:
        """Open the file at the path again (read-write): after it was replaced, or to
        find whether a read-only state is writable again. Raises FailoverError."""
        try:
            db = self._connect()
        except (OSError, sqlite3.Error) as exc:
            raise FailoverError(f"cannot open state {self.path}: {exc}") from None
        with self._lock:
            old, self._db = self._db, db
            self.read_only = False
            self._version = None
            self._inode = _inode(self.path)
        with contextlib.suppress(sqlite3.Error):
            old.close()

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
        found = (codec.override_from(dict(zip(OVERRIDE_COLUMNS, row, strict=True)),
                                     f"{self.path} overrides {row[0]!s:.20}/{row[1]!s:.200}",
                                     self._skip) for row in rows)
        return [o for o in found if o is not None]

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
        self._put("health", codec.health_data(snapshot))

    def load_health(self) -> HealthSnapshot | None:
        return codec.health_from(self._get("health"), f"{self.path} health", self._skip)

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self._put("checks", codec.checks_data(states))

    def load_checks(self) -> dict[str, CheckState]:
        return codec.checks_from(self._get("checks"), f"{self.path} checks", self._skip)

    def save_decisions(self, decisions: list[Decision]) -> None:
        self._run("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                  ("decisions", codec.decisions_text(decisions)))

    def load_decisions(self) -> dict[tuple[str, str], Decision]:
        return codec.decisions_from(self._get("decisions"), f"{self.path} decisions",
                                    self._skip)

    def _put(self, key: str, value: Any) -> None:
        self._run("INSERT OR REPLACE INTO kv VALUES (?, ?)", (key, json.dumps(value)))

    def _get(self, key: str) -> Any:
        rows = self._run("SELECT value FROM kv WHERE key = ?", (key,))
        return codec.parsed(rows[0][0], f"{self.path} {key}", self._skip) if rows else None

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
        rows = self._run("SELECT id, at, kind, subject, message, detail FROM events WHERE at >= ? "
                         "AND (? IS NULL OR kind = ?) ORDER BY id DESC LIMIT ?",
                         (since or 0.0, kind, kind, limit))
        found = (codec.event_from({"at": at, "kind": kind, "subject": subject,
                                   "message": message, "detail": codec.parsed(
                                       detail, f"{self.path} event {row_id}", self._skip)},
                                  f"{self.path} event {row_id}", self._skip)
                 for row_id, at, kind, subject, message, detail in reversed(rows))
        return [e for e in found if e is not None]

    def prune(self, older_than: float, keep: int) -> int:
        with self._lock:
            try:
                cur = self._db.execute(
                    "DELETE FROM events WHERE at < ? OR id <= (SELECT max(id) FROM events) - ?",
                    (older_than, keep))
                return int(cur.rowcount)
            except sqlite3.Error as exc:
                raise FailoverError(f"state {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._release_lock()


def _inode(where: Path | int) -> tuple[int, int] | None:
    """The (device, inode) of a path or an open file descriptor; None when it is gone."""
    try:
        st = os.stat(where)
    except OSError:
        return None
    return st.st_dev, st.st_ino
