"""`failover demo`: it serves each client network its own answer, as the commands it
prints say, moves one network's answer when a region fails, and stops everything it
started; `--dir` where another user could plant a symlink is refused before anything is
written (the demo writes its TSIG and rndc secrets there)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from failover.localdns import named_binary, port_free
from tests.builders import ROOT
from tests.service_env import EAST, WEST, a_values, wait_for

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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_demo_answers_each_network_as_it_prints_and_stops_everything(
        tmp_path: Path) -> None:
    if named_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("named is not installed: make test installs bind9")
        pytest.skip("named is not installed (apt-get install bind9 bind9-utils)")
    out = tmp_path / "demo.out"
    directory = tmp_path / "d"
    proc = subprocess.Popen([sys.executable, "-m", "failover", "demo", "--dir", str(directory)],
                            cwd=ROOT, stdout=out.open("w"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    pids: list[int] = []
    try:
        assert wait_for(lambda: "Ctrl-C stops the demo." in out.read_text(), 60), \
            out.read_text()
        text = out.read_text()
        named_at = re.search(r"private named at 127\.0\.0\.1:(\d+)", text)
        assert named_at, text
        port = int(named_at[1])
        region = {name: int(pid) for name, pid in
                  re.findall(r"(us-east-1|eu-west-1): 127\.0\.\d\.1:\d+ \(pid (\d+)\)", text)}
        named = int((directory / "named" / "named.pid").read_text())
        pids = [named, *region.values()]
        # the two dig commands it prints: the same name, two clients, two answers
        digs = re.findall(rf"dig @127\.0\.0\.1 -p {port} -b (\S+) api\.example\.test \+short"
                          r" +# (\S+)", text)
        client = {answer: source for source, answer in digs}  # europe's is told eu-west-1
        assert len(digs) == 2 and set(client) == {WEST, EAST}, text

        def answers() -> tuple[set[str] | None, set[str] | None]:
            return (a_values(port, "api.example.test.", source=client[WEST]),
                    a_values(port, "api.example.test.", source=client[EAST]))

        assert wait_for(lambda: answers() == ({WEST}, {EAST}), 60), out.read_text()
        assert f"kill -STOP {region['us-east-1']}" in text
        assert "drain us-east-1 --network default" in text and "/v1/drain" in text
        os.kill(region["us-east-1"], signal.SIGSTOP)  # us-east-1 fails: default moves
        assert wait_for(lambda: answers() == ({WEST}, {WEST}), 60), out.read_text()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=90) == 0, out.read_text()
        # named and both regions stopped (the stopped region too), the port given back
        assert wait_for(lambda: not any(_alive(p) for p in pids), 30), out.read_text()
        assert port_free("127.0.0.1", port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for pid in pids:  # named runs in a session of its own
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
