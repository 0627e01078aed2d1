"""The TSIG key an RFC 2136 adapter signs with, and the file its secret came from.

A secret rotated in its file (the server given the new secret, the file rewritten) made
the server answer BADSIG until a SIGHUP. Instead, when the server refuses the key the
adapter asks the key to read its file again and, when the secret there changed, signs
the retry and every later request with the new one. A key the server keeps refusing
must not read the disk and fill the log at every retry: the file is re-read at most once
a minute, or at once when the file itself changed (a stat says so) since it was read.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import dns.name
import dns.tsig

from failover.dns.wire import Signer
from failover.errors import SecretError

if TYPE_CHECKING:
    from pydantic import SecretStr

    from failover.config import BindProvider, Config

log = logging.getLogger(__name__)

REREAD_EVERY = 60.0  # seconds: the least time between two readings of an unchanged file


@dataclass(frozen=True)
class SecretFile:
    """Where a secret came from: the file, and how to read and check it again (raises
    SecretError, as when the config was loaded)."""

    path: Path
    read: Callable[[], SecretStr]


class Reread(NamedTuple):
    """What reading the secret file again found."""

    changed: bool  # a new secret is in use: the refused request is worth sending again
    said: str  # "TSIG secret re-read from FILE after BADSIG: changed" (never the secret)
    path: Path

    def refused(self) -> str:
        """The words for an error when the server refuses the key all the same."""
        return (f"{self.said}, and the server still refuses it: fix the key on the server "
                f"or in {self.path}")


class SigningKey:
    """A TSIG key (name, algorithm, secret) and, when its secret came from a file, that
    file, to read again when the server refuses the key. Safe to share between threads."""

    def __init__(self, name: str, algorithm: str, secret: SecretStr,
                 file: SecretFile | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.name = dns.name.from_text(name)
        self.algorithm = dns.name.from_text(algorithm)
        self.file = file
        self.clock = clock
        self.signer = self._signer(secret)
        self._secret = secret
        self._lock = threading.Lock()
        self._stamp = self._stat()  # the file as it was when its secret was read
        self._read_at: float | None = None  # when a refusal last had the file read
        self._last: Reread | None = None

    @property
    def keyring(self) -> dict[dns.name.Name, dns.tsig.Key]:
        return self.signer.keyring

    def reread(self, answer: str, refused: Signer | None = None) -> Reread | None:
        """After the server refused the key (`answer`: BADSIG, BADKEY...; `refused`: the
        signer the request was signed with): read the secret file again and sign with its
        secret from now on when it changed. None when the secret came from an environment
        variable (it cannot change under a running process). Within a minute of the last
        reading, an unchanged file is not read: what that reading found is returned, not
        changed; a request signed before another one took up a new secret is told it
        changed, without a reading."""
        if self.file is None:
            return None
        with self._lock:
            now, stamp = self.clock(), self._stat()
            last = self._last
            if last is not None and refused is not None and refused is not self.signer:
                return last._replace(changed=True)
            if (last is not None and self._read_at is not None
                    and now - self._read_at < REREAD_EVERY and stamp == self._stamp):
                return last._replace(changed=False)
            self._read_at, self._stamp = now, stamp
            where = f"TSIG secret re-read from {self.file.path} after {answer}"
            try:
                secret = self.file.read()
            except SecretError as exc:
                found = Reread(False, f"{where}: cannot be used ({exc})", self.file.path)
            else:
                changed = secret.get_secret_value() != self._secret.get_secret_value()
                if changed:
                    self.signer, self._secret = self._signer(secret), secret
                found = Reread(changed, f"{where}: {'changed' if changed else 'unchanged'}",
                               self.file.path)
            log.warning("event=tsig_reread key=%s %s", self.name.to_text(), found.said)
            self._last = found
            return found

    def _signer(self, secret: SecretStr) -> Signer:
        return Signer(self.name, dns.tsig.Key(self.name, secret.get_secret_value(),
                                              self.algorithm))

    def _stat(self) -> tuple[int, int, int] | None:
        if self.file is None:
            return None
        try:
            st = os.stat(self.file.path)
        except OSError:
            return None
        return st.st_ino, st.st_size, st.st_mtime_ns


def signing_key(cfg: Config, provider: BindProvider, where: str) -> SigningKey | None:
    """The provider's TSIG key, its secret resolved now (and read again from its file when
    the server refuses it); None when no TSIG is configured.

    Raises SecretError when the variable or file is missing or not base64.
    """
    secret = cfg.tsig_secret(provider, where)
    tsig = provider.tsig
    if secret is None or tsig is None:
        return None
    file = None
    if tsig.secret_file:
        file = SecretFile(cfg.path(tsig.secret_file),
                          lambda: _resolved(cfg.tsig_secret(provider, where)))
    return SigningKey(tsig.name, tsig.algorithm, secret, file)


def _resolved(secret: SecretStr | None) -> SecretStr:
    assert secret is not None  # the provider has a key: tsig_secret resolves it or raises
    return secret
