"""The controller keeps failing over through reloads, floods, bad state and hostile input."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.query
import dns.tsigkeyring
import dns.update
import pytest

from failover.localdns import free_port, write_private
from tests.builders import ROOT
from tests.fleet import fleet
from tests.service_env import EAST, WEST, Env, served_east, wait_for

SOUTH = "127.0.3.1"


def _endpoint(env: Env, eid: str) -> dict[str, object]:
    for region in env.status().get("regions", {}).values():
        for ep in region["endpoints"]:
            if ep["id"] == eid:
                return dict(ep)
    return {}


def test_a_reload_puts_new_checks_regions_and_records_in_effect(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    port = free_port(EAST, WEST, SOUTH)
    with fleet([{"name": SOUTH, "host": SOUTH, "port": port, "behaviour": "ok"}]):
        with fleet([{"name": EAST, "host": EAST, "port": port, "behaviour": "ok"}]):
            # the check moves to another port (where west has nothing) and a region is added
            text = env.config.read_text().replace(f"port: {env.http_port}", f"port: {port}")
            text = text.replace("  eu-west-1: {endpoints: [{address: 127.0.2.1, check: web}]}",
                                "  eu-west-1: {endpoints: [{address: 127.0.2.1, check: web}]}\n"
                                f"  ap-south-1: {{endpoints: [{{address: {SOUTH}, check: web}}]}}")
            text = text.replace("order: [us-east-1, eu-west-1]",
                                "order: [us-east-1, eu-west-1, ap-south-1]")
            env.config.write_text(text)
            os.kill(proc.pid, signal.SIGHUP)
            # the new region is probed (by the new checks) and the controller stays ready
            assert wait_for(lambda: bool(_endpoint(env, f"ap-south-1/{SOUTH}").get("recent")),
                            timeout=15), env.log()
            assert wait_for(lambda: _endpoint(env, f"eu-west-1/{WEST}").get("healthy") is False,
                            timeout=15), env.log()
            assert env.status()["ready"] is True
            assert env.answer() == {EAST}
            env.stop_region(EAST)  # on the old port: its check no longer runs
        # east on the new port gone: the answer goes to the region the reload added
        assert wait_for(lambda: env.answer() == {SOUTH}, timeout=20), env.log()
    assert proc.poll() is None


def _get(env: Env, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{env.api_port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError:
        return 0, ""


def _with_refresh(env: Env, seconds: float = 1) -> None:
    env.config.write_text(env.config.read_text().replace(
        f"listen: 127.0.0.1:{env.api_port}",
        f"listen: 127.0.0.1:{env.api_port}\n  refresh: {seconds}"))


def test_failover_goes_on_under_a_flood_of_slow_connections(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    slow = []
    try:
        for _ in range(600):  # more than the cap, each stuck in its request headers
            s = socket.create_connection(("127.0.0.1", env.api_port), timeout=5)
            s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\n")
            slow.append(s)
        assert _get(env, "/status")[0] == 200  # an operator still gets an answer
        env.stop_region(EAST)
        assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()
    finally:
        for s in slow:
            s.close()


def test_a_second_controller_on_the_same_state_is_refused(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    second = subprocess.run([sys.executable, "-m", "failover", "run", "--config",
                             str(env.config)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, check=False)
    assert second.returncode == 2, second.stderr
    assert f"in use by another controller (PID {proc.pid})" in second.stderr
    assert proc.poll() is None
    assert stat.S_IMODE(os.stat(env.dir / "failover.db").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(env.dir / "failover.db.lock").st_mode) == 0o600


def test_the_cli_says_applied_only_when_a_controller_took_it_up(env: Env) -> None:
    r = env.cli("drain", "us-east-1", "--reason", "maintenance", "--for", "1h")
    assert r.returncode == 0, r.stderr
    assert "saved: no controller is running" in r.stdout
    line = next(x for x in env.cli("history").stdout.splitlines() if "drained" in x)
    assert "us-east-1 drained by " in line and ": maintenance (until " in line
    r = env.cli("restore", "us-east-1")
    assert r.returncode == 0, r.stderr
    assert env.cli("restore", "us-east-1").returncode == 2  # not drained: an error
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    r = env.cli("drain", "us-east-1")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, r.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()


def test_the_state_deleted_under_the_controller_is_reopened(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    for suffix in ("", "-wal", "-shm"):
        (env.dir / f"failover.db{suffix}").unlink(missing_ok=True)
    r = env.cli("drain", "us-east-1")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, (
        r.stdout + r.stderr + env.log())
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    history = env.cli("history").stdout
    # the CLI made a new file before the controller looked: "replaced", else "deleted"
    assert re.search(r"failover.db was (deleted|replaced by another file): reopened it", history)
    # what the controller holds is kept in the new file
    assert wait_for(lambda: '"desired"' in env.cli("status", "--json", "--no-read").stdout)


def test_pin_to_an_unhealthy_region_needs_force_and_names_are_relative(env: Env) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.stop_region(WEST)
    assert wait_for(lambda: "eu-west-1/127.0.2.1 is unhealthy" in env.cli("history").stdout)
    r = env.cli("pin", "api", "eu-west-1")
    assert r.returncode == 2 and "eu-west-1 is unhealthy for api.example.test." in r.stderr
    assert "--force" in r.stderr
    r = env.cli("pin", "apj", "us-east-1")
    assert r.returncode == 2 and "did you mean api.example.test." in r.stderr
    r = env.cli("pin", "api", "eu-west-1", "--force", "--reason", "testing the standby")
    assert r.returncode == 0, r.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    assert env.cli("unpin", "www").returncode == 2


def test_a_deleted_marker_is_loud(env: Env) -> None:
    _with_refresh(env)
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert wait_for(lambda: _get(env, "/readyz")[0] == 200)
    keyring = dns.tsigkeyring.from_text({env.named.tsig_name: env.named.tsig_secret})
    upd = dns.update.UpdateMessage("example.test.", keyring=keyring)
    upd.delete("_failover.api.example.test.", "TXT")  # what a sync tool's prune does
    assert dns.query.udp(upd, "127.0.0.1", port=env.named.port, timeout=2).rcode() == 0
    assert wait_for(lambda: _get(env, "/readyz")[0] == 503, timeout=20), env.log()
    _, text = _get(env, "/readyz")
    assert "api.example.test. holds A records but no failover marker" in text
    assert "restore the marker, or set ownership.take_over" in text
    # /status is built after /readyz's reasons are published: wait for it too
    assert wait_for(lambda: [n["name"] for n in env.status().get("not_written", [])]
                    == ["api.example.test."], timeout=10), env.status()
    metrics = _get(env, "/metrics")[1]
    assert 'failover_names_not_written{reason="no marker"} 1.0' in metrics
    assert "failover_degraded 1.0" in metrics
    # restored as docs/operations.md says: the next refresh that sees it clears it
    upd = dns.update.UpdateMessage("example.test.", keyring=keyring)
    upd.add("_failover.api.example.test.", 30, "TXT", '"heritage=failover,owner=failover"')
    assert dns.query.udp(upd, "127.0.0.1", port=env.named.port, timeout=2).rcode() == 0
    assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=15), _get(env, "/readyz")
    assert 'failover_names_not_written{reason="no marker"} 0.0' in _get(env, "/metrics")[1]
    assert "api.example.test.: written by this controller again" in env.cli("history").stdout


def test_dns_down_is_said_with_backoff_in_json_and_readyz_degrades(env: Env) -> None:
    _with_refresh(env)
    env.start_controller("--log-format", "json")
    assert wait_for(served_east(env)), env.log()
    env.named.stop()
    env.stop_region(EAST)  # a failover to write while DNS is down
    assert wait_for(lambda: "DNS failing for" in _get(env, "/readyz")[1], timeout=30)
    assert wait_for(lambda: _failing_for(env) >= 12, timeout=40), _get(env, "/readyz")
    env.named.restart()
    assert wait_for(lambda: env.answer() == {WEST}, timeout=30), env.log()
    assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=20)
    lines = [x["message"] for x in _lines(env)]
    [recovered] = [int(m.group(1)) for x in lines
                   if (m := re.search(r"event=dns_recovered failures=(\d+)", x))]
    errors = [x for x in _lines(env) if "event=dns_error" in x["message"]]
    assert all(x["level"] == "error" for x in errors), errors  # a stuck write is an error
    # not one line a failed attempt: the first said as is, the same error again only with
    # how often it repeated meanwhile, and fewer lines than failed attempts
    said = [x["message"] for x in errors]
    assert said and "repeated" not in said[0], said
    counts = [int(n) for x in said[1:] for n in re.findall(r"\(repeated (\d+) times in", x)]
    assert len(counts) == len(said) - 1, said
    assert counts == sorted(set(counts)) and all(1 < n <= recovered for n in counts), said
    assert len(said) < recovered, (said, recovered)


def _failing_for(env: Env) -> float:
    text = _get(env, "/readyz")[1]
    found = re.search(r"DNS failing for (\d+) s", text)
    return float(found.group(1)) if found else 0.0


def _lines(env: Env) -> list[dict[str, Any]]:
    """The controller's log: every line is JSON (a line that is not fails the test)."""
    return [json.loads(line) for line in env.log().splitlines() if line.strip()]


@contextmanager
def small_disk(path: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of `size` mounted at `path` (root only: skipped with the reason outside
    CI, a failure in CI), unmounted after."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or not shutil.which("mount"):
        if os.environ.get("CI") == "true":
            pytest.fail("the disk fault tests need root to mount a tmpfs, and CI runs as root")
        pytest.skip("needs root to mount a small tmpfs (a full or read-only disk)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs",
                    str(path)], check=True, timeout=30)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False, timeout=30)


def _fill(directory: Path) -> Path:
    """Fill the disk at `directory`; the file that fills it (delete it to free the disk)."""
    filler = directory / "filler"
    with filler.open("wb") as f:
        try:
            for _ in range(10_000):
                f.write(b"\0" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def test_a_full_disk_does_not_stop_failover_and_saves_resume(env: Env) -> None:
    with small_disk(env.dir / "state") as disk:
        env.config.write_text(env.config.read_text().replace(
            "state: ./failover.db", "state: ./state/failover.db"))
        proc = env.start_controller()
        assert wait_for(served_east(env)), env.log()
        filler = _fill(disk)
        env.stop_region(EAST)  # a failover whose history and decisions cannot be saved
        assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()
        assert wait_for(lambda: "state store failing" in _get(env, "/readyz")[1], timeout=30), (
            env.log())
        assert "failover_state_ok 0.0" in _get(env, "/metrics")[1]
        assert proc.poll() is None
        filler.unlink()
        assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=90), env.log()
        history = env.cli("history").stdout
        assert "state store writable again" in history
        # what happened while the disk was full was kept in memory and written after
        assert "us-east-1/127.0.1.1 is unhealthy" in history


def test_a_read_only_state_starts_and_fails_over(env: Env) -> None:
    with small_disk(env.dir / "state") as disk:
        env.config.write_text(env.config.read_text().replace(
            "state: ./failover.db", "state: ./state/failover.db"))
        env.start_controller()
        assert wait_for(served_east(env)), env.log()
        assert env.stop_controller() == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, timeout=30)
        proc = env.start_controller()  # no crash loop: it runs on what it can read
        assert wait_for(lambda: "state store failing" in _get(env, "/readyz")[1], timeout=30), (
            env.log())
        env.stop_region(EAST)
        assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True, timeout=30)
        assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=90), env.log()
        assert proc.poll() is None


def test_files_that_hold_secrets_are_private_from_the_start(tmp_path: Path) -> None:
    """Every file the demo writes a secret in (named's TSIG and rndc keys, each view's
    TSIG secret the controller reads, the API token, the config naming them) is a new 0600
    file of ours, never one written through a symlink left in its place."""
    from failover.localdns import named_binary

    if named_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("named is not installed: make test installs bind9")
        pytest.skip("named is not installed")
    d = tmp_path / "d"
    (d / "named").mkdir(mode=0o700, parents=True)
    d.chmod(0o700)
    planted = ("europe.key", "default.key", "api.token", "failover.yaml", "named/named.conf",
               "named/rndc.conf")
    for name in planted:
        victim = tmp_path / f"victim-{name.replace('/', '-')}"
        victim.write_text("not the demo's\n")
        (d / name).symlink_to(victim)
    out = tmp_path / "demo.out"
    proc = subprocess.Popen([sys.executable, "-m", "failover", "demo", "--dir", str(d)],
                            cwd=ROOT, stdout=out.open("w"), stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: "event=listening" in out.read_text(), timeout=60), (
            out.read_text())
        port = int(re.search(r"private named at 127\.0\.0\.1:(\d+)", out.read_text())[1])
        # the TSIG secret written is the one named holds: the controller's write lands
        assert wait_for(lambda: _answer(port, "api.example.test.") == {EAST}, timeout=30), (
            out.read_text())
        secrets = [d / name for name in planted]
        secrets += sorted((d / "named").glob("secondary-*/*.conf"))
        for path in secrets:
            st = os.lstat(path)
            assert stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600, path
            assert st.st_uid == os.geteuid(), path
        for victim in tmp_path.glob("victim-*"):
            assert victim.read_text() == "not the demo's\n", victim
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


def _answer(port: int, name: str) -> set[str]:
    import dns.message

    try:
        reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port,
                              timeout=1)
    except (OSError, dns.exception.Timeout):
        return set()
    return {rd.to_text() for rrset in reply.answer for rd in rrset}


def _break(path: Path, how: str) -> None:
    """Damage a state file as a failing disk or a bad copy does."""
    db = sqlite3.connect(path)
    # every page in the file itself, the log emptied (a running controller may be busy)
    assert wait_for(lambda: db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0)
    page = int(db.execute("PRAGMA page_size").fetchone()[0])
    events = int(db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'events'")
                 .fetchone()[0])
    db.close()
    if how == "not a database":
        path.write_bytes(os.urandom(8 * page))
    elif how == "truncated":
        os.truncate(path, events * page // 2)
    else:  # malformed: the history's first page overwritten, the overrides still readable
        with path.open("r+b") as f:
            f.seek((events - 1) * page)
            f.write(b"\xff" * page)


@pytest.mark.parametrize("how", ["malformed", "truncated", "not a database"])
def test_a_corrupt_state_is_set_aside_and_failover_goes_on(env: Env, how: str) -> None:
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    r = env.cli("drain", "us-east-1", "--reason", "maintenance")
    assert r.returncode == 0 and "applied by the running controller" in r.stdout, r.stderr
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    assert env.stop_controller() == 0
    _break(env.dir / "failover.db", how)
    # the commands that read the state say what is wrong and what will happen; only the
    # controller moves the file, and a change is written whole or not at all
    for command in (("status", "--no-read"), ("history",), ("drain", "eu-west-1", "--force"),
                    ("restore", "us-east-1")):
        r = env.cli(*command)
        assert r.returncode == 1, (command, r.stdout, r.stderr)
        assert "failover.db is corrupt (" in r.stderr, (command, r.stderr)
        assert "the controller sets it aside as failover.db.corrupt-<time> at its next " \
               "start" in r.stderr, (command, r.stderr)
        assert "Traceback" not in r.stderr, (command, r.stderr)
    assert not list(env.dir.glob("failover.db.corrupt-*"))
    proc = env.start_controller()  # no crash loop: it sets the file aside and starts afresh
    assert wait_for(served_east(env)), env.log()  # the drain went with the old state
    env.stop_region(EAST)
    assert wait_for(lambda: env.answer() == {WEST}, timeout=20), env.log()
    assert proc.poll() is None
    moved = [p.name for p in env.dir.glob("failover.db.corrupt-*")]
    assert len([m for m in moved if re.fullmatch(r"failover\.db\.corrupt-\d{8}T\d{6}Z", m)]) \
        == 1, moved
    name = next(m for m in moved if not m.endswith(("-wal", "-shm")))
    assert re.search(rf"ERROR failover\S* event=state_set_aside .*{re.escape(name)}", env.log())
    first = json.loads(env.cli("history", "--json").stdout)[0]  # the new state's first line
    assert first["kind"] == "error" and "was corrupt" in first["message"], first
    assert f"set aside as {name}; started from an empty state" in first["message"], first
    if how == "malformed":  # what it could still read of the old state is named
        assert "overrides lost: drain us-east-1" in first["message"], first


def test_a_change_the_command_cannot_write_goes_through_the_running_controller(
        env: Env) -> None:
    env.add_token()
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    _break(env.dir / "failover.db", "malformed")  # under it: the history cannot be written
    r = env.cli("drain", "us-east-1")
    assert r.returncode == 0 and r.stdout.startswith("us-east-1 drained"), r.stdout + r.stderr
    assert "(through the API of the running controller, PID " in r.stdout, r.stdout
    assert "this command could not write the state: state " in r.stdout, r.stdout
    assert "failover.db is corrupt (" in r.stdout, r.stdout
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    assert proc.poll() is None


def _changes() -> tuple[Any, Any, Any]:
    """A drain, a pin and the restore of the drain, as the CLI and the API make them."""
    from failover.state.store import Event, Override, OverrideChange

    drained = Override("drain", "us-east-1", "us-east-1", "ops", "maintenance", 1.0)
    pinned = Override("pin", "api.example.test.", "eu-west-1", "ops", "", 2.0)
    return (
        OverrideChange("us-east-1 drained", Event(1.0, "override", "us-east-1",
                                                  "us-east-1 drained by ops"), set=drained),
        OverrideChange("api.example.test. pinned to eu-west-1", Event(
            2.0, "override", "api.example.test.", "api.example.test. pinned by ops"),
            set=pinned),
        OverrideChange("us-east-1 restored", Event(3.0, "override", "us-east-1",
                                                   "us-east-1 restored by ops"), clear=drained))


def test_an_override_and_its_history_line_are_written_together_or_not_at_all(
        tmp_path: Path) -> None:
    from failover.errors import FailoverError
    from failover.overrides import commit
    from failover.state.sqlite import SqliteState

    drain, pin, restore = _changes()
    state = SqliteState(tmp_path / "failover.db")
    try:
        assert commit(state, drain) == "us-east-1 drained"
        # the history takes no more lines, as a full disk refuses the pages they need
        other = sqlite3.connect(tmp_path / "failover.db")
        other.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN "
                      "SELECT RAISE(ABORT, 'database or disk is full'); END")
        other.commit()
        other.close()
        for change in (pin, restore):
            with pytest.raises(FailoverError, match="database or disk is full"):
                commit(state, change)
        assert [(o.kind, o.target) for o in state.overrides()] == [("drain", "us-east-1")]
        assert [e.message for e in state.history()] == ["us-east-1 drained by ops"]
    finally:
        state.close()


def test_on_a_full_disk_a_new_override_is_refused_and_undoing_one_goes_through(
        tmp_path: Path) -> None:
    from failover.errors import FailoverError
    from failover.health import HealthSnapshot
    from failover.overrides import commit
    from failover.state.sqlite import SqliteState

    drain, pin, restore = _changes()
    with small_disk(tmp_path / "disk", "1m") as disk:
        state = SqliteState(disk / "failover.db", exclusive=True)  # as the controller opens it
        try:
            for _ in range(2):  # and again once the disk had room in between
                assert commit(state, drain) == "us-east-1 drained"
                filler = _fill(disk)
                with pytest.raises(FailoverError, match=r"failover\.db: database or disk is full"):
                    commit(state, pin)
                assert [o.target for o in state.overrides()] == ["us-east-1"]
                assert commit(state, restore) == "us-east-1 restored"
                assert state.overrides() == []
                assert state.history()[-1].message == "us-east-1 restored by ops"
                filler.unlink()
                state.save_health(HealthSnapshot(at=4.0, endpoints={}))  # every 10 s
        finally:
            state.close()


def _post(env: Env, action: str, body: dict[str, Any]) -> int:
    req = urllib.request.Request(
        f"http://127.0.0.1:{env.api_port}/v1/{action}", data=json.dumps(body).encode(),
        method="POST", headers={"Authorization": "Bearer s3cret-token-for-tests"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _state_on(env: Env, disk: Path) -> None:
    env.config.write_text(env.config.read_text().replace(
        "state: ./failover.db", f"state: ./{disk.name}/failover.db"))


def test_on_a_full_disk_drain_and_restore_work_and_status_says_the_state_is_stale(
        env: Env) -> None:
    with small_disk(env.dir / "state") as disk:
        _state_on(env, disk)
        env.add_token()
        proc = env.start_controller()
        assert wait_for(served_east(env)), env.log()
        r = env.cli("drain", "us-east-1")  # before the disk fills
        assert r.returncode == 0, r.stderr
        assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
        filler = _fill(disk)
        assert wait_for(lambda: "state store failing" in _get(env, "/readyz")[1], timeout=30), (
            env.log())
        r = env.cli("restore", "us-east-1")
        assert r.returncode == 0 and r.stdout.startswith("us-east-1 restored"), r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert wait_for(served_east(env), timeout=10), env.log()
        r = env.cli("drain", "us-east-1", "--reason", "disk full drill")
        assert r.returncode == 0 and r.stdout.startswith("us-east-1 drained"), r.stdout + r.stderr
        assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
        shown = env.cli("status", "--no-read").stdout
        assert "STALE STATE: the state is stale (the running controller cannot write it): " \
               "shown is the running controller's own /status" in shown, shown
        assert "problem: state store failing (write)" in shown, shown
        assert re.search(r"drain us-east-1 by .*: disk full drill", shown), shown
        assert _post(env, "restore", {"region": "us-east-1", "by": "alice"}) == 200
        assert wait_for(served_east(env), timeout=10), env.log()
        filler.unlink()
        assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=90), env.log()
        assert wait_for(lambda: "STALE STATE" not in env.cli("status", "--no-read").stdout,
                        timeout=10)
        history = env.cli("history").stdout
        assert re.search(r"us-east-1 drained by api token \./token for \S+: disk full drill",
                         history), history
        assert "us-east-1 restored by api token ./token for alice" in history, history
        assert proc.poll() is None


def test_changes_the_state_cannot_take_are_held_by_the_controller_and_written_later(
        env: Env) -> None:
    from tests.service_env import overrides_left

    with small_disk(env.dir / "state") as disk:
        _state_on(env, disk)
        env.add_token()
        env.start_controller()
        assert wait_for(served_east(env)), env.log()
        assert env.stop_controller() == 0
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True, timeout=30)
        try:
            proc = env.start_controller()  # it runs on what it can read
            assert wait_for(lambda: "opened read-only" in _get(env, "/readyz")[1],
                            timeout=30), env.log()
            r = env.cli("drain", "us-east-1", "--reason", "held")
            assert r.returncode == 0, r.stdout + r.stderr
            assert r.stdout.startswith("us-east-1 drained; in force now, held in memory by the "
                                       "running controller: its state cannot be written"), r.stdout
            assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
            assert "us-east-1 drained" in _get(env, "/readyz")[1]  # named while held
            # the drain is in the controller's memory only: the restore finds it there
            r = env.cli("restore", "us-east-1")
            assert r.returncode == 0, r.stdout + r.stderr
            assert r.stdout.startswith("us-east-1 restored; in force now, held in memory"), (
                r.stdout)
            assert wait_for(served_east(env), timeout=10), env.log()
        finally:
            subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True, timeout=30)
        assert wait_for(lambda: _get(env, "/readyz")[0] == 200, timeout=90), env.log()
        history = env.cli("history").stdout
        drained = history.index("us-east-1 drained by api token ./token for ")
        assert history.index("us-east-1 restored by api token ./token for ") > drained
        assert overrides_left(env) == []
        assert proc.poll() is None


def test_a_second_demo_in_a_directory_in_use_is_refused(tmp_path: Path) -> None:
    from failover import demo

    demo._claim(tmp_path)  # this process runs a demo there
    try:
        (tmp_path / "failover.yaml").write_text("# the running demo's config\n")
        r = subprocess.run([sys.executable, "-m", "failover", "demo", "--dir", str(tmp_path)],
                           cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    finally:
        os.close(demo._held.pop())
    assert r.returncode == 2 and f"in use by a running demo (PID {os.getpid()})" in r.stderr
    assert (tmp_path / "failover.yaml").read_text() == "# the running demo's config\n"


def test_history_is_pruned_by_age_and_count(tmp_path: Path) -> None:
    from failover.state.sqlite import SqliteState
    from failover.state.store import Event

    state = SqliteState(tmp_path / "s.db")
    try:
        state.record([Event(float(t), "health", "x", f"event {t}") for t in range(100)])
        assert state.prune(older_than=20.0, keep=1000) == 20
        assert state.prune(older_than=0.0, keep=50) == 30
        left = state.history(limit=1000)
        assert [e.message for e in left] == [f"event {t}" for t in range(50, 100)]
    finally:
        state.close()


def test_api_changes_carry_actor_reason_and_expiry(env: Env) -> None:
    env.add_token()
    env.start_controller()
    assert wait_for(served_east(env)), env.log()
    body = json.dumps({"region": "us-east-1", "reason": "db failover test", "by": "alice",
                       "for": "3s"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{env.api_port}/v1/drain", data=body,
                                 method="POST",
                                 headers={"Authorization": "Bearer s3cret-token-for-tests"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read())["message"] == "us-east-1 drained"
    assert wait_for(lambda: env.answer() == {WEST}, timeout=10), env.log()
    assert wait_for(served_east(env), timeout=15), env.log()  # the expiry is honoured
    events = json.loads(env.cli("history", "--json").stdout)
    drained = next(e for e in events if e["message"].startswith("us-east-1 drained by"))
    assert drained["detail"]["actor"] == "api token ./token for alice"
    assert drained["detail"]["reason"] == "db failover test"
    assert drained["detail"]["expires"] is not None


def _drain(env: Env, auth: str) -> int:
    body = json.dumps({"region": "us-east-1", "reason": "test", "for": "2s"}).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{env.api_port}/v1/drain", data=body,
                                 method="POST", headers={"Authorization": auth})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_reload_that_blanks_the_api_token_is_refused(env: Env) -> None:
    env.add_token()
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    (env.dir / "token").write_text("  \n")
    os.kill(proc.pid, signal.SIGHUP)
    assert wait_for(lambda: "reload_refused" in env.log(), timeout=10), env.log()
    assert "controller.token: secret file" in env.log() and "is empty" in env.log()
    assert _drain(env, "Bearer ") == 401  # an empty token never opens the API
    assert _drain(env, "Bearer s3cret-token-for-tests") == 200  # the running token stays


def _reloads(env: Env) -> float:
    """Reloads the running controller performed (failover_config_reloads_total)."""
    found = re.search(r'^failover_config_reloads_total\{result="applied"\} (\S+)$',
                      _get(env, "/metrics")[1], re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_a_storm_of_sighups_is_coalesced_and_failover_goes_on_through_it(env: Env) -> None:
    from failover.config import load_config
    from failover.probes import targets_for
    from failover.probes.scheduler import phases

    env.config.write_text(env.config.read_text().replace("order: [us-east-1, eu-west-1]",
                                                         "order: [eu-west-1, us-east-1]"))
    # the primary's check runs half an interval after the probes start: when each signal
    # restarted them, it was not probed at all while signals kept coming
    assert phases(targets_for(load_config(env.config)))[f"eu-west-1/{WEST}#web"] > 0
    proc = env.start_controller()
    assert wait_for(lambda: env.answer() == {WEST}), env.log()
    allowing = env.config.read_text().replace(
        f"listen: 127.0.0.1:{env.api_port}",
        f"listen: 127.0.0.1:{env.api_port}\n  allowed_hosts: [failover.example.com]")
    assert _status_as(env, "failover.example.com") == 421
    env.stop_region(WEST)
    sent, deadline = 0, time.monotonic() + 30
    # SIGHUPs at ~100/s until the failover is served (or the deadline), then 100 more,
    # the config changed before the last few of them
    while time.monotonic() < deadline and (sent % 10 or env.answer() != {EAST}):
        os.kill(proc.pid, signal.SIGHUP)
        sent += 1
        time.sleep(0.01)  # the storm's pace
    failed_over = env.answer() == {EAST}
    for i in range(100):
        if i == 90:
            env.config.write_text(allowing)
        os.kill(proc.pid, signal.SIGHUP)
        time.sleep(0.01)
    sent += 100
    assert failed_over, env.log()
    assert wait_for(lambda: _status_as(env, "failover.example.com") == 200, timeout=20), (
        env.log())
    reloads = _reloads(env)
    assert 2 <= reloads <= sent / 10, (reloads, sent)  # a few, not one per signal
    assert proc.poll() is None


def test_a_tsig_secret_rotated_in_its_file_is_taken_up_without_a_reload(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    new = base64.b64encode(os.urandom(32)).decode()
    env.named.rekey(new)  # the server has the new secret; the controller's file not yet
    env.stop_region(EAST)  # a failover to write
    path = env.dir / "tsig.secret"
    refused = (f"TSIG secret re-read from {path} after BADSIG: unchanged, and the server "
               f"still refuses it: fix the key on the server or in {path}")
    assert wait_for(lambda: refused in env.readyz()[1], timeout=30), (env.readyz(), env.log())
    code, text = env.readyz()
    assert code == 503 and "DNS failing for" in text, text
    write_private(path, new + "\n")  # the file fixed: the next attempt signs with it
    assert wait_for(lambda: env.answer() == {WEST}, timeout=30), env.log()
    assert wait_for(lambda: env.readyz()[0] == 200, timeout=20), env.readyz()
    assert f"TSIG secret re-read from {path} after BADSIG: changed" in env.log()
    assert "event=reloaded" not in env.log() and proc.poll() is None  # no SIGHUP needed
    assert new not in env.log()


def test_a_reload_that_moves_the_listener_is_refused(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    env.config.write_text(env.config.read_text().replace(
        f"listen: 127.0.0.1:{env.api_port}", f"listen: 127.0.0.1:{free_port()}"))
    os.kill(proc.pid, signal.SIGHUP)
    assert wait_for(lambda: "reload_refused" in env.log(), timeout=10), env.log()
    assert "controller.listen changed: a restart applies it" in env.log()
    assert _get(env, "/healthz")[0] == 200


def _status_as(env: Env, host: str) -> int:
    """The code /status answers a request addressed to `host` (its Host header)."""
    req = urllib.request.Request(f"http://127.0.0.1:{env.api_port}/status",
                                 headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_foreign_host_is_refused_and_a_reload_can_allow_a_name(env: Env) -> None:
    proc = env.start_controller()
    assert wait_for(served_east(env)), env.log()
    assert _status_as(env, f"127.0.0.1:{env.api_port}") == 200
    assert _status_as(env, "failover.example.com") == 421  # a rebound name reads nothing
    env.config.write_text(env.config.read_text().replace(
        f"listen: 127.0.0.1:{env.api_port}",
        f"listen: 127.0.0.1:{env.api_port}\n  allowed_hosts: [failover.example.com]"))
    os.kill(proc.pid, signal.SIGHUP)
    assert wait_for(lambda: _status_as(env, "failover.example.com") == 200, timeout=10), (
        env.log())
    assert _status_as(env, "attacker.example") == 421


def test_the_demo_stops_named_and_the_endpoints_when_killed(tmp_path: Path) -> None:
    from failover.localdns import named_binary

    if named_binary() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("named is not installed: make test installs bind9")
        pytest.skip("named is not installed")
    out = (tmp_path / "demo.out").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "failover", "demo", "--dir",
                             str(tmp_path / "d")], cwd=ROOT, stdout=out,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: "event=listening" in (tmp_path / "demo.out").read_text(),
                        timeout=60), (tmp_path / "demo.out").read_text()
        text = (tmp_path / "demo.out").read_text()
        pids = [int(p) for p in re.findall(r"\(pid (\d+)\)", text)]
        pids.append(int((tmp_path / "d" / "named" / "named.pid").read_text()))
        assert len(pids) == 3 and all(_alive(p) for p in pids)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert wait_for(lambda: not any(_alive(p) for p in pids), timeout=30)
        assert "event=stopped reason=signal" in (tmp_path / "demo.out").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat_path = Path(f"/proc/{pid}/stat")
    return not (stat_path.exists() and stat_path.read_text().split(") ")[-1].startswith("Z"))
