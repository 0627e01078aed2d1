"""A cache of validated large configs, so the CLI at 10,000 records does not spend a
second and a half reading YAML on every `status`, `drain` or `plan`.

Only configs that validated are kept, keyed by the file's bytes and by this code (its
version and the files of the package), so an edit of either misses. The cache lives in
`$XDG_CACHE_HOME/failover` (or `~/.cache/failover`), 0700, each entry 0600; an entry not
owned by this user, or writable by others, is never loaded (a pickle runs code).
`FAILOVER_NO_CONFIG_CACHE=1` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from failover.config import Config

MIN_SIZE = 256 * 1024  # bytes of YAML below which parsing is fast enough
KEEP = 8  # entries kept
_code: str | None = None


def _directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "failover"


def _code_key() -> str:
    """This code: the package's files (names, sizes, modification times) and Python's."""
    global _code
    if _code is None:
        import sys

        root = Path(__file__).resolve().parent
        digest = hashlib.sha256(sys.version.encode())
        for folder in (root, root.parent / "policies"):
            for path in sorted(folder.rglob("*.py")):
                st = path.stat()
                digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        _code = digest.hexdigest()
    return _code


def _entry(raw: bytes) -> Path:
    return _directory() / (hashlib.sha256(raw + _code_key().encode()).hexdigest() + ".pickle")


def _enabled(raw: bytes) -> bool:
    return len(raw) >= MIN_SIZE and not os.environ.get("FAILOVER_NO_CONFIG_CACHE")


def get(raw: bytes) -> Config | None:
    """The validated config of these bytes, if this user's cache has it."""
    if not _enabled(raw):
        return None
    path = _entry(raw)
    try:
        with path.open("rb") as f:
            st = os.fstat(f.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                return None
            cfg = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
            TypeError, ValueError):
        return None
    from failover.config import Config

    return cfg if isinstance(cfg, Config) else None


def put(raw: bytes, cfg: Config) -> None:
    """Keep a config that validated (best effort: a cache that cannot be written is
    only slower)."""
    if not _enabled(raw):
        return
    directory = _directory()
    with contextlib.suppress(OSError, pickle.PicklingError, TypeError, AttributeError):
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        copy = cfg.model_copy()
        copy._memo = {}  # derived values are made again on use
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp")  # 0600
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(copy, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, _entry(raw))
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        entries = sorted(directory.glob("*.pickle"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-KEEP]:
            old.unlink(missing_ok=True)
