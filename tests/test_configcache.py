"""The config cache serves an entry only when no one else could have written it: a
planted entry (another config's records under this config's name) is never served."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from failover.config import Config, load_config
from failover.config import cache as configcache
from tests.builders import EXAMPLES, ROOT

CONTRACT_TEXT = (EXAMPLES / "contract.yaml").read_text()
NOBODY = 65534


def large(path: Path, records: int) -> Path:
    """A config big enough to be cached: the contract's 3 records and `records` more."""
    path.write_text(CONTRACT_TEXT + "".join(
        f"  - {{name: r{i}.example.test., type: A, policy: failover, "
        f"order: [us-east-1, eu-west-1]}}\n" for i in range(records)))
    assert path.stat().st_size >= configcache.MIN_SIZE
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("FAILOVER_NO_CONFIG_CACHE", raising=False)
    return tmp_path / "cache" / "failover"


@pytest.fixture
def a(tmp_path: Path) -> Path:
    return large(tmp_path / "a.yaml", 3000)


@pytest.fixture
def b_config(tmp_path: Path, cache: Path) -> Config:
    """B's validated config (B has 100 records more than A); it is cached."""
    return load_config(large(tmp_path / "b.yaml", 3100))


def plant(a: Path, b_config: Config) -> Path:
    """The entry an attacker wants: B's records where A's are looked up (made by the
    cache's own writer, so every check but the one under test passes)."""
    configcache.put(a.read_bytes(), b_config)
    entry = configcache._directory() / f"{configcache._key(a.read_bytes())}.pickle"
    assert entry.is_file()
    return entry


def test_a_planted_entry_in_a_trusted_cache_is_served(a: Path, b_config: Config) -> None:
    # what the other tests refuse: without their condition, the plant works
    plant(a, b_config)
    assert len(load_config(a).records) == 3103


def test_a_cache_directory_owned_by_another_user_is_not_used(a: Path, b_config: Config,
                                                             cache: Path) -> None:
    plant(a, b_config)
    os.chown(cache, NOBODY, NOBODY)
    assert len(load_config(a).records) == 3003
    # and nothing of ours is written there
    before = set(os.listdir(cache))
    load_config(large(a.parent / "c.yaml", 3200))
    assert set(os.listdir(cache)) == before


def test_a_cache_directory_others_may_write_is_not_used(a: Path, b_config: Config,
                                                        cache: Path) -> None:
    plant(a, b_config)
    cache.chmod(0o777)
    assert len(load_config(a).records) == 3003
    cache.chmod(0o770)
    assert len(load_config(a).records) == 3003


def test_a_symlinked_cache_directory_is_not_used(a: Path, b_config: Config,
                                                 cache: Path) -> None:
    plant(a, b_config)
    elsewhere = cache.parent / "elsewhere"
    cache.rename(elsewhere)
    cache.symlink_to(elsewhere)
    assert len(load_config(a).records) == 3003


def test_a_symlinked_entry_is_not_followed(a: Path, b_config: Config, cache: Path) -> None:
    entry = plant(a, b_config)
    target = cache / "planted.bin"
    entry.rename(target)
    entry.symlink_to(target.name)
    assert len(load_config(a).records) == 3003


def test_an_entry_written_for_other_bytes_is_not_served(a: Path, b_config: Config,
                                                        cache: Path, tmp_path: Path) -> None:
    # B's own entry (a regular file of ours, 0600) copied or renamed to A's name
    b_entry = cache / f"{configcache._key((tmp_path / 'b.yaml').read_bytes())}.pickle"
    b_entry.rename(cache / f"{configcache._key(a.read_bytes())}.pickle")
    assert len(load_config(a).records) == 3003


def test_validate_reports_its_own_config_when_the_entry_links_to_another(
        a: Path, b_config: Config, cache: Path, tmp_path: Path) -> None:
    load_config(a)  # A's entry, then replaced by a link to B's
    a_entry = cache / f"{configcache._key(a.read_bytes())}.pickle"
    b_entry = cache / f"{configcache._key((tmp_path / 'b.yaml').read_bytes())}.pickle"
    a_entry.unlink()
    a_entry.symlink_to(b_entry)
    r = subprocess.run([sys.executable, "-m", "failover", "validate", "--config", str(a)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
                       env={**os.environ, "XDG_CACHE_HOME": str(cache.parent)})
    assert r.returncode == 0, r.stderr
    assert "3003 records" in r.stdout, r.stdout
