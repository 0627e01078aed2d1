"""State: operator overrides, the latest health snapshot and decisions, and the event history.

`StateStore` is the interface; SQLite (WAL) is the embedded default for one controller.
A distributed store will sit behind the same interface, so nothing outside this package
may assume a local file.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from failover.state.store import Event, Override, StateStore

if TYPE_CHECKING:
    from failover.config import Config

__all__ = ["Event", "Override", "StateStore", "controller_pid", "open_state",
           "running_controller"]


def open_state(cfg: Config, exclusive: bool = False) -> StateStore:
    """The store the config names: etcd for a fleet (`controller.cluster`), else a
    SQLite file at `controller.state`; with `exclusive` (the controller) a SQLite file
    is held against a second controller (a fleet elects its writer instead), and a
    corrupt one is set aside and started afresh (its `set_aside` says so). Without it, a
    corrupt SQLite file raises StateCorrupt and stays where it is."""
    cluster = cfg.controller.cluster
    if cluster is not None:
        from failover.cluster import client_for
        from failover.state.etcd import EtcdState

        return EtcdState(client_for(cfg), cluster.etcd.prefix, cluster.vantage_name())
    from failover.state.sqlite import SqliteState

    return SqliteState(cfg.path(cfg.controller.state), exclusive=exclusive)


def controller_pid(cfg: Config) -> int | None:
    """The PID of the controller running on the config's state, None when none is."""
    from failover.state.sqlite import holder

    return holder(cfg.path(cfg.controller.state))


def running_controller(cfg: Config) -> str | None:
    """Who takes a change of the state up: "PID n" (one process), "leader V (host H,
    PID n)" (a fleet), None when nobody runs."""
    cluster = cfg.controller.cluster
    if cluster is None:
        pid = controller_pid(cfg)
        return None if pid is None else f"PID {pid}"
    from failover.cluster import client_for
    from failover.cluster.member import read_leader

    client = client_for(cfg)
    try:
        leader = read_leader(client, cluster.etcd.prefix)
    finally:
        client.close()
    if leader is None:
        return None
    return (f"leader {leader.get('vantage')} (host {leader.get('host')}, PID "
            f"{leader.get('pid')}, epoch {leader.get('epoch')})")
