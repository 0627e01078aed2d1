"""The SQLite state store (WAL): safe for one controller plus CLI readers and writers.

The file is created 0600 (write access to it is the authority to drain). A controller
holds an exclusive lock on `<state>.lock` (holding its PID) for as long as it runs: a
second controller on the same state is refused, naming the first, and the CLI knows
whether a controller is there to take its change up.

A state file that is not a sound SQLite database (malformed, truncated, not one at all)
is set aside by the controller when it starts, as `<state>.corrupt-<UTC time>` with its
-wal and -shm, and it starts from an empty state rather than exit (a service manager
would restart it into the same failure forever). The CLI never moves it: it says so.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from failover.errors import FailoverError, InputError
from failover.health import CheckState, HealthSnapshot
from failover.state import codec
from failover.state.reserve import Reserve
from failover.state.store import Event, Override, OverrideChange, OverrideKind
from policies import Decision, DecisionKey

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS overrides (
    kind TEXT NOT NULL, target TEXT NOT NULL, region TEXT NOT NULL, who TEXT NOT NULL,
    why TEXT NOT NULL, at REAL NOT NULL, expires REAL, PRIMARY KEY (kind, target));
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, kind TEXT NOT NULL,
    subject TEXT NOT NULL, message TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_at ON events (at);
CREATE TABLE IF NOT EXISTS checks (key TEXT PRIMARY KEY, value TEXT NOT NULL);
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


class StateCorrupt(FailoverError):
    """The state file is not a sound SQLite database: malformed, truncated, or not one."""

    def __init__(self, path: Path, why: str) -> None:
        self.why = why
        super().__init__(f"state {path} is corrupt ({why}): the controller sets it aside as "
                         f"{path.name}.corrupt-<time> at its next start and starts from an "
                         "empty state (the overrides in it are lost)")


def is_corrupt(exc: sqlite3.Error) -> bool:
    """Whether SQLite found the file damaged or not a database at all."""
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def _out_of_space(exc: sqlite3.Error) -> bool:
    # a full disk is SQLITE_FULL in a write, SQLITE_IOERR when a -wal cannot be grown
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR)


class SqliteState:
    """State in one SQLite file; every call is one short transaction.

    With `exclusive` (the controller) it takes the state's lock, sets a corrupt state
    aside (`set_aside` says what it did) and starts an empty one, and a state it can read
    but not write (a read-only file or disk) is opened read-only: the controller runs on
    what it holds and `reopen()` tries again for writing. Without it, a corrupt state
    raises StateCorrupt.
    """

    def __init__(self, path: Path, exclusive: bool = False) -> None:
        self.path = path
        self.read_only = False
        self.set_aside: str | None = None  # a corrupt state set aside at open: what and why
        self._lock_fd: int | None = None
        self._lock = threading.Lock()
        self._version: int | None = None
        self._inode: tuple[int, int] | None = None
        self._reserve = Reserve(path)
        self._skip = codec.Skipped()  # values of the wrong shape, named once each
        if exclusive:
            self._take_lock()
        try:
            try:
                self._db = self._connect(check=exclusive)
            except StateCorrupt as corrupt:
                if not exclusive:
                    raise
                self.set_aside = self._set_aside(corrupt.why)
                self._db = self._connect()
        except FailoverError:  # corrupt (the CLI), or corrupt and it cannot be moved
            self._release_lock()
            raise
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
        if exclusive and not self.read_only:
            # the controller makes it (and again after each save of its health): a
            # command making it could take the very space its own change needs
            self._reserve.keep()

    def _connect(self, check: bool = False) -> sqlite3.Connection:
        """A connection to the file at the path (created when missing); with `check`,
        every page is read first (~0.3 s for a million events). Raises StateCorrupt."""
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
            if check:
                found = [str(row[0]) for row in db.execute("PRAGMA quick_check(3)")]
                if found != ["ok"]:
                    lines = [x for f in found for x in f.splitlines() if not x.startswith("*")]
                    raise StateCorrupt(path, "quick_check: " + "; ".join(lines))
        except sqlite3.Error as exc:
            db.close()
            if is_corrupt(exc):
                raise StateCorrupt(self.path, str(exc)) from None
            raise
        except StateCorrupt:
            db.close()
            raise
        return db

    def _set_aside(self, why: str) -> str:
        """Move the corrupt state (with its -wal and -shm) to `<state>.corrupt-<UTC
        time>`, under the state's lock; what was done, for the log and the history.
        Raises FailoverError when it cannot be moved."""
        lost = _readable_overrides(self.path)
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}")
        n = 1
        while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
            n += 1
            target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{n}")
        try:
            # the -wal first: a new database must never find the old one's log beside it
            for suffix in ("-wal", "-shm", ""):
                with contextlib.suppress(FileNotFoundError):
                    os.rename(f"{self.path}{suffix}", f"{target}{suffix}")
        except OSError as exc:
            raise FailoverError(f"state {self.path} is corrupt ({why}) and cannot be set "
                                f"aside: {exc.strerror}; move it and its -wal and -shm "
                                "away by hand") from None
        if lost is None:
            overrides = "its overrides could not be read (lost)"
        elif lost:
            overrides = f"overrides lost: {', '.join(lost)} (drain or pin again to keep them)"
        else:
            overrides = "it held no override that could be read"
        said = (f"state {self.path} was corrupt ({why}): set aside as {target.name}; "
                "started from an empty state: endpoints start healthy until probed, "
                f"decisions and history start again; {overrides}")
        log.error("event=state_set_aside state=%s moved_to=%s error=%r overrides_lost=%r",
                  self.path, target, why, lost)
        return said

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
                raise self._failure(exc) from None

    def _failure(self, exc: sqlite3.Error) -> FailoverError:
        if is_corrupt(exc):
            return StateCorrupt(self.path, str(exc))
        return FailoverError(f"state {self.path}: {exc}")

    def _rollback(self) -> None:
        # SQLite rolls back itself on some errors (a full disk): a second ROLLBACK fails
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

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

    def change_override(self, change: OverrideChange) -> bool:
        try:
            return self._change(change)
        except sqlite3.Error as exc:
            # undoing a drain or a pin must work on a full disk: the reserve makes room
            if not (change.clear is not None and _out_of_space(exc)
                    and self._reserve.release()):
                raise self._failure(exc) from None
            log.warning("event=state_reserve_spent state=%s change=%r error=%r: the disk "
                        "is full; the space set aside for undoing overrides was freed",
                        self.path, change.summary, str(exc))
        try:
            return self._change(change)
        except sqlite3.Error as exc:
            raise self._failure(exc) from None

    def _change(self, change: OverrideChange) -> bool:
        e = change.event
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                if change.clear is not None:
                    o = change.clear
                    gone = self._db.execute(
                        "DELETE FROM overrides WHERE kind = ? AND target = ? AND at = ?",
                        (o.kind, o.target, o.at)).rowcount
                    if not gone:
                        self._db.execute("ROLLBACK")
                        return False
                if change.set is not None:
                    o = change.set
                    self._db.execute("INSERT OR REPLACE INTO overrides VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (o.kind, o.target, o.region, o.who, o.why, o.at, o.expires))
                self._db.execute(
                    "INSERT INTO events (at, kind, subject, message, detail) VALUES (?, ?, ?, ?, ?)",
                    (e.at, e.kind, e.subject, e.message, json.dumps(dict(e.detail))))
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._rollback()
                raise
        return True

    # health and decisions
    def save_health(self, snapshot: HealthSnapshot) -> None:
        self._put("health", codec.health_data(snapshot))
        self._reserve.keep()  # the controller saves every 10 s: room again, made again

    def load_health(self) -> HealthSnapshot | None:
        return codec.health_from(self._get("health"), f"{self.path} health", self._skip)

    def save_checks(self, states: Mapping[str, CheckState]) -> None:
        self._checks(states, whole=True)

    def update_checks(self, states: Mapping[str, CheckState]) -> None:
        self._checks(states, whole=False)

    def _checks(self, states: Mapping[str, CheckState], whole: bool) -> None:
        # one row per check: a save writes what changed, not every check there is
        rows = [(k, json.dumps(v)) for k, v in codec.checks_data(states).items()]
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    if whole:
                        self._db.execute("DELETE FROM checks")
                        # a state kept by an earlier version: one value for all checks
                        self._db.execute("DELETE FROM kv WHERE key = 'checks'")
                    self._db.executemany("INSERT OR REPLACE INTO checks VALUES (?, ?)", rows)
                    # a write even when no check changed: a full disk says so at once
                    self._db.execute("INSERT OR REPLACE INTO kv VALUES ('checks_at', ?)",
                                     (json.dumps(time.time()),))
                    self._db.execute("COMMIT")
                except sqlite3.Error:
                    self._rollback()
                    raise
            except sqlite3.Error as exc:
                raise self._failure(exc) from None
        self._reserve.keep()

    def load_checks(self) -> dict[str, CheckState]:
        where = f"{self.path} checks"
        data = self._get("checks")  # kept by an earlier version, whole
        merged = dict(data) if isinstance(data, dict) else {}
        if data is not None and not isinstance(data, dict):
            codec.checks_from(data, where, self._skip)  # says what is wrong with it
        for key, value in self._run("SELECT key, value FROM checks"):
            merged[key] = codec.parsed(value, f"{where} {key[:200]}", self._skip)
        return codec.checks_from(merged, where, self._skip)

    def save_decisions(self, decisions: list[Decision]) -> None:
        self._run("INSERT OR REPLACE INTO kv VALUES (?, ?)",
                  ("decisions", codec.decisions_text(decisions)))

    def load_decisions(self) -> dict[DecisionKey, Decision]:
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
                self._rollback()
                raise self._failure(exc) from None

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
                raise self._failure(exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._release_lock()


def _readable_overrides(path: Path) -> list[str] | None:
    """The overrides a damaged state file still yields ("drain us-east-1"), read only;
    None when none can be read."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=1)
    except sqlite3.Error:
        return None
    try:
        rows = db.execute("SELECT kind, target FROM overrides ORDER BY at LIMIT 50").fetchall()
    except sqlite3.Error:
        return None
    finally:
        db.close()
    return [f"{kind} {target}"[:300] for kind, target in rows]


def _inode(where: Path | int) -> tuple[int, int] | None:
    """The (device, inode) of a path or an open file descriptor; None when it is gone."""
    try:
        st = os.stat(where)
    except OSError:
        return None
    return st.st_dev, st.st_ino
