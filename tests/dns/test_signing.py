"""A TSIG key reads its secret file again when the server refuses it: a rotated secret
is taken up, an unchanged file is read at most once a minute, a bad one is not used."""

from __future__ import annotations

import base64
from pathlib import Path

from pydantic import SecretStr

from failover.config import resolve_secret
from failover.dns.signing import SecretFile, SigningKey
from failover.localdns import write_private

OLD = base64.b64encode(b"o" * 32).decode()
NEW = base64.b64encode(b"n" * 32).decode()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def file_key(path: Path, clock: Clock, reads: list[str] | None = None) -> SigningKey:
    """A key whose secret came from `path` (holding OLD), reading it as the config does;
    each reading appended to `reads`."""
    write_private(path, OLD + "\n")

    def read() -> SecretStr:
        secret = resolve_secret(None, str(path), "provider.tsig", path.parent)
        if reads is not None:
            reads.append(secret.get_secret_value())
        return secret

    return SigningKey("failover-key", "hmac-sha256", SecretStr(OLD), SecretFile(path, read),
                      clock=clock)


def secret_of(key: SigningKey) -> bytes:
    return bytes(key.signer.key.secret)


def test_a_secret_rotated_in_its_file_is_signed_with_from_then_on(tmp_path: Path) -> None:
    path = tmp_path / "tsig.secret"
    key = file_key(path, Clock())
    write_private(path, NEW + "\n")
    found = key.reread("BADSIG")
    assert found is not None and found.changed
    assert found.said == f"TSIG secret re-read from {path} after BADSIG: changed"
    assert secret_of(key) == base64.b64decode(NEW)
    assert key.keyring == {key.name: key.signer.key}
    assert NEW not in found.refused() and OLD not in found.refused()


def test_a_request_signed_before_the_new_secret_was_taken_up_is_sent_again(
        tmp_path: Path) -> None:
    path, reads = tmp_path / "tsig.secret", []
    key = file_key(path, Clock(), reads)
    old = key.signer
    write_private(path, NEW + "\n")
    assert key.reread("BADSIG", old) is not None
    # a second request, signed with the old secret at the same time, refused after that
    late = key.reread("BADSIG", old)
    assert late is not None and late.changed and len(reads) == 1
    assert key.reread("BADSIG", key.signer) == late._replace(changed=False)


def test_an_unchanged_file_is_read_at_most_once_a_minute(tmp_path: Path) -> None:
    path, clock, reads = tmp_path / "tsig.secret", Clock(), []
    key = file_key(path, clock, reads)
    first = key.reread("BADSIG")
    assert first is not None and not first.changed
    assert first.refused() == (f"TSIG secret re-read from {path} after BADSIG: unchanged, and "
                               "the server still refuses it: fix the key on the server or in "
                               f"{path}")
    clock.now += 59
    again = key.reread("BADSIG")
    assert len(reads) == 1  # the disk is not read at every refusal
    assert again == first  # the same words: said once, then as a repeat
    clock.now += 2
    assert key.reread("BADKEY") is not None and len(reads) == 2
    assert secret_of(key) == base64.b64decode(OLD)


def test_a_file_rewritten_within_the_minute_is_read_at_once(tmp_path: Path) -> None:
    path, clock = tmp_path / "tsig.secret", Clock()
    key = file_key(path, clock)
    assert key.reread("BADSIG") is not None
    clock.now += 5
    write_private(path, NEW + "\n")  # the operator fixes the file after the first refusal
    found = key.reread("BADSIG")
    assert found is not None and found.changed
    assert secret_of(key) == base64.b64decode(NEW)


def test_a_file_that_cannot_be_used_keeps_the_secret_in_use(tmp_path: Path) -> None:
    path = tmp_path / "tsig.secret"
    key = file_key(path, Clock())
    write_private(path, "\n")
    found = key.reread("BADSIG")
    assert found is not None and not found.changed
    assert found.said == (f"TSIG secret re-read from {path} after BADSIG: cannot be used "
                          f"(provider.tsig: secret file {path} is empty)")
    assert secret_of(key) == base64.b64decode(OLD)


def test_a_secret_from_the_environment_is_not_read_again() -> None:
    key = SigningKey("failover-key", "hmac-sha256", SecretStr(OLD))
    assert key.reread("BADSIG") is None
