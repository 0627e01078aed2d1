"""`failover demo --dir`: a directory where another user could plant a symlink is
refused before anything is written (the demo writes its TSIG and rndc secrets there)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.builders import ROOT

NOBODY = 65534
VICTIM = "a file the demo must never write\n"


def demo(directory: Path) -> tuple[int, str]:
    """Run `failover demo --dir`; its exit code and stderr. A demo that was not refused
    starts and runs: it is stopped (exit code -1) after a generous wait."""
    proc = subprocess.Popen([sys.executable, "-m", "failover", "demo", "--dir",
                             str(directory)], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=30)
        return proc.returncode, err
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)  # the demo unwinds: named and the regions stop
        proc.communicate(timeout=60)
        return -1, "the demo started"


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    path = tmp_path / "victim"
    path.write_text(VICTIM)
    return path


def test_a_directory_of_another_user_is_refused(tmp_path: Path, victim: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "tsig.secret").symlink_to(victim)  # planted by its owner
    os.lchown(shared / "tsig.secret", NOBODY, NOBODY)
    os.chown(shared, NOBODY, NOBODY)
    code, err = demo(shared)
    assert code == 2, err
    assert f"{shared} is owned by user {NOBODY}, not by you" in err
    assert victim.read_text() == VICTIM
    assert os.listdir(shared) == ["tsig.secret"]  # nothing written


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_directory_group_or_others_may_write_is_refused(tmp_path: Path, mode: int) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(mode)
    code, err = demo(shared)
    assert code == 2, err
    assert f"{shared} is writable by group or others" in err and "chmod go-w" in err
    assert os.listdir(shared) == []


def test_a_symlink_of_another_user_as_the_directory_is_refused(tmp_path: Path) -> None:
    mine = tmp_path / "mine"  # a directory of ours, 0700: the link would send secrets there
    mine.mkdir(mode=0o700)
    link = tmp_path / "demo"
    link.symlink_to(mine)
    os.lchown(link, NOBODY, NOBODY)
    code, err = demo(link)
    assert code == 2, err
    assert f"{link} is a symlink owned by user {NOBODY}" in err
    assert os.listdir(mine) == []


def test_a_directory_inside_one_of_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    (theirs / "demo").mkdir(mode=0o700)  # ours, but its parent's owner could swap it
    os.chown(theirs, NOBODY, NOBODY)
    code, err = demo(theirs / "demo")
    assert code == 2, err
    assert f"is inside {theirs}, owned by user {NOBODY}" in err
    assert os.listdir(theirs / "demo") == []


def test_a_planted_lock_symlink_is_not_followed(tmp_path: Path, victim: Path) -> None:
    mine = tmp_path / "mine"
    mine.mkdir(mode=0o700)
    (mine / "demo.lock").symlink_to(victim)
    code, err = demo(mine)
    assert code == 2, err
    assert "demo.lock" in err
    assert victim.read_text() == VICTIM  # not truncated, no PID written in it
