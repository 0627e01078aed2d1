"""A cache of validated large configs, so the CLI at 10,000 records does not spend a
second and a half reading YAML on every `status`, `drain` or `plan` (loading.py keeps
and finds them here).

Only configs that validated are kept, keyed by the file's bytes and by this code (its
version and the files of the package), so an edit of either misses. The cache lives in
`$XDG_CACHE_HOME/failover` (or `~/.cache/failover`), 0700, each entry 0600. A pickle runs
code when loaded, so the cache is used only when no one else could have written it:
the directory is not a symlink, is owned by this user and writable by no one else; an
entry is a regular file (opened without following a symlink) owned by this user and
writable by no one else, and it names the key it was written for, which must be the
key of the config being loaded (an entry copied or renamed over another's is a miss).
`FAILOVER_NO_CONFIG_CACHE=1` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from failover.config.models import Config

MIN_SIZE = 256 * 1024  # bytes of YAML below which parsing is fast enough
KEEP = 8  # entries kept
MAGIC = b"failover-config-cache "  # an entry's first line: this, its key, "\n"
OTHERS_WRITE = stat.S_IWGRP | stat.S_IWOTH
_code: str | None = None


def _directory() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "failover"


def _code_key() -> str:
    """This code: the package's files (names, sizes, modification times) and Python's."""
    global _code
    if _code is None:
        import sys

        root = Path(__file__).resolve().parents[1]  # the whole failover package
        digest = hashlib.sha256(sys.version.encode())
        for folder in (root, root.parent / "policies"):
            for path in sorted(folder.rglob("*.py")):
                st = path.stat()
                digest.update(f"{path.name}:{st.st_size}:{st.st_mtime_ns};".encode())
        _code = digest.hexdigest()
    return _code


def _key(raw: bytes) -> str:
    """The key of a config's bytes under this code (an entry's name and first line)."""
    return hashlib.sha256(raw + _code_key().encode()).hexdigest()


def _enabled(raw: bytes) -> bool:
    return len(raw) >= MIN_SIZE and not os.environ.get("FAILOVER_NO_CONFIG_CACHE")


def _mine(st: os.stat_result) -> bool:
    """Owned by this user and writable by no one else."""
    return st.st_uid == os.geteuid() and not st.st_mode & OTHERS_WRITE


@contextlib.contextmanager
def _opened_directory(create: bool) -> Iterator[int | None]:
    """The cache directory, open (entries are then reached through it, so it cannot be
    swapped between the check and the use), or None when it is missing or not this
    user's alone: a symlink, owned by another user, or writable by group or others."""
    directory = _directory()
    if create:
        with contextlib.suppress(OSError):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        yield None
        return
    try:
        st = os.fstat(fd)
        yield fd if stat.S_ISDIR(st.st_mode) and _mine(st) else None
    finally:
        os.close(fd)


def get(raw: bytes) -> Config | None:
    """The validated config of these bytes, if this user's cache has it."""
    if not _enabled(raw):
        return None
    key = _key(raw)
    try:
        with _opened_directory(create=False) as directory:
            if directory is None:
                return None
            fd = os.open(f"{key}.pickle", os.O_RDONLY | os.O_NOFOLLOW, dir_fd=directory)
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not (stat.S_ISREG(st.st_mode) and _mine(st)):
                return None
            if f.readline() != MAGIC + key.encode() + b"\n":
                return None  # written for other bytes (or other code): never unpickled
            cfg = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError,
            TypeError, ValueError):
        return None
    return cfg if isinstance(cfg, Config) else None


def put(raw: bytes, cfg: Config) -> None:
    """Keep a config that validated (best effort: a cache that cannot be written is
    only slower)."""
    if not _enabled(raw):
        return
    key = _key(raw)
    with contextlib.suppress(OSError, pickle.PicklingError, TypeError, AttributeError), \
            _opened_directory(create=True) as directory:
        if directory is None:
            return
        copy = cfg.model_copy()
        copy._memo = {}  # derived values are made again on use
        tmp = f".{key}.{secrets.token_hex(8)}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600,
                     dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(MAGIC + key.encode() + b"\n")
                pickle.dump(copy, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, f"{key}.pickle", src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=directory)
        entries = sorted((os.stat(name, dir_fd=directory, follow_symlinks=False).st_mtime, name)
                         for name in os.listdir(directory) if name.endswith(".pickle"))
        for _, old in entries[:-KEEP]:
            os.unlink(old, dir_fd=directory)
